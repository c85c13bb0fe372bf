"""What every AnalysisTemplate metric Kiln renders shares: the conditions that keep an
empty result inconclusive, the measurement limits, and the Job provider's Job.

How Argo Rollouts reads them is told in targets/analysis.py.
"""

from __future__ import annotations

from compiler.ir import ModelIR
from compiler.targets import k8s
from compiler.targets.k8s import Object

# Errors are measurements Prometheus could not answer. Three in a row end the metric in
# Error, which aborts the rollout: an analysis that cannot see must not pass, and one
# failed query (Prometheus restarting) should not abort.
CONSECUTIVE_ERROR_LIMIT = 2
# Idleness is never a failure: with only a successCondition, Argo Rollouts counts every
# measurement that is not a success as failed, so the requests metric states a
# failureCondition that never holds and a short window stays inconclusive.
NEVER = "false"


def at_most(ceiling: float) -> tuple[str, str]:
    """(successCondition, failureCondition) of a metric that must stay at or under
    `ceiling`; an empty or NaN result satisfies neither."""
    return (
        f"len(result) == 1 && result[0] <= {ceiling:g}",
        f"len(result) == 1 && result[0] > {ceiling:g}",
    )


def at_least_share(floor: float) -> tuple[str, str]:
    """(successCondition, failureCondition) of a metric that must stay at or over `floor`;
    an empty or NaN result satisfies neither."""
    return (
        f"len(result) == 1 && result[0] >= {floor:g}",
        f"len(result) == 1 && result[0] < {floor:g}",
    )


def at_least(floor: int) -> tuple[str, str]:
    """(successCondition, failureCondition) of the data-exists metric."""
    return f"len(result) == 1 && result[0] >= {floor}", NEVER


def prometheus_metric(
    model: ModelIR, name: str, query: str, conditions: tuple[str, str], delay_s: int = 0
) -> Object:
    analysis = model.rollout.analysis
    assert analysis is not None
    success, failure = conditions
    delay = {"initialDelay": f"{delay_s}s"} if delay_s else {}
    return {
        "name": name,
        **delay,
        "interval": f"{int(analysis.interval.seconds)}s",
        "count": analysis.count,
        "failureLimit": analysis.failure_limit,
        "inconclusiveLimit": analysis.inconclusive_limit,
        "consecutiveErrorLimit": CONSECUTIVE_ERROR_LIMIT,
        "successCondition": success,
        "failureCondition": failure,
        "provider": {"prometheus": {"address": model.environment.prometheus_url, "query": query}},
    }


def pod_metadata(model: ModelIR) -> Object:
    labels = k8s.job_pod_labels(model)
    return {"metadata": {"labels": labels}} if labels else {}


def job_spec(model: ModelIR, container: Object, volumes: list[Object], deadline_s: int) -> Object:
    """The Job provider's Job: one try, under the model's serving account, which can read
    the model and data stores (workload identity)."""
    return {
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline_s,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                **pod_metadata(model),
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": model.name,
                    "automountServiceAccountToken": False,
                    "securityContext": k8s.pod_security(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        }
    }
