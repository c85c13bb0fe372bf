"""AnalysisTemplate metrics that judge the new version on its predictions (issue 18).

Argo Rollouts' Job provider knows two outcomes: a Job that completes is a Successful
measurement, one that fails is Failed (argo-rollouts metricproviders/job/job.go, Resume);
it cannot say Inconclusive. A window with too few captured rows must be inconclusive,
never a pass and never a failure (the rule of the operational metrics, targets/analysis.py),
so the decision is not the Job's:

- `quality-measure` (Job provider) runs runtime/monitor/compare.py over the captured
  traffic. It exits 0 once it has pushed what it measured to the Pushgateway, too few rows
  included, and fails only when it cannot read the data or push, a measurement that could
  not be taken;
- `quality-rows` (Prometheus) reads the rows the step saw: at or over `min_rows` is a
  success, fewer is inconclusive, never failed (the data-exists metric, like `requests`);
- `prediction-shift`, `prediction-agreement`, `prediction-mean-abs-difference`
  (Prometheus) read the step's values, which it pushes only with enough rows; each query is
  also empty when the step's last push is older than one interval and the Job's deadline,
  so a value left by an earlier rollout or a stalled step is never read as this one's.

The Pushgateway group is per (model, environment, version): the version being rolled out
is the one this build renders, so an AnalysisRun reads only its own version's numbers.
"""

from __future__ import annotations

from collections.abc import Callable

from compiler.ir import ModelIR
from compiler.ir.serving import QualityIR
from compiler.targets import capture, k8s
from compiler.targets.analysis_metrics import (
    at_least,
    at_least_share,
    at_most,
    job_spec,
    prometheus_metric,
)
from compiler.targets.k8s import Object
from compiler.targets.pipeline import data_uri
from runtime.contract import capture as capture_contract
from runtime.contract import quality as contract

# The comparison Job's deadline: reading an hour of captured parquet takes seconds.
JOB_DEADLINE_S = 300
# The Prometheus metrics that read the step's pushes, by the series each reads.
READERS = {
    "quality-rows": contract.ROWS,
    "prediction-shift": contract.SHIFT,
    "prediction-agreement": contract.AGREEMENT,
    "prediction-mean-abs-difference": contract.MEAN_ABS_DIFFERENCE,
}


def captured_location(model: ModelIR) -> str:
    """`<storage.data>/<model>/captured/`, where capture writes (docs/capture.md); the
    comparison reads this environment's partition of it (`--environment`)."""
    return data_uri(model, capture_contract.captured_path(model.name))


def rolled_out_version(model: ModelIR) -> int | None:
    """The version this build rolls out, the `model_version` its captured rows carry: the
    served version, or a declared ensemble's (its capture step writes that)."""
    if model.ensemble is None and not model.is_served:
        return None
    return capture.version(model)


def window_seconds(model: ModelIR) -> int:
    """The traffic one comparison reads: the analysis so far (count x interval), and for
    shadow and A/B the mirroring or experiment before it, whose traffic it judges."""
    rollout = model.rollout
    analysis = rollout.analysis
    assert analysis is not None
    before = 0.0
    if rollout.strategy == "shadow":
        before = rollout.shadow.duration.seconds
    elif rollout.strategy == "ab" and rollout.ab is not None:
        before = rollout.ab.duration.seconds
    return int(before + analysis.count * analysis.interval.seconds)


def _scores(model: ModelIR) -> str | None:
    assert model.monitoring is not None
    score = model.monitoring.columns.score
    if score is None or isinstance(score, str):
        return score
    return ",".join(column for _, column in score)


def _command(model: ModelIR, quality: QualityIR) -> tuple[str, ...]:
    version = rolled_out_version(model)
    assert model.monitoring is not None and version is not None
    columns = model.monitoring.columns
    shadow = model.rollout.strategy == "shadow"
    return contract.COMPARE_PREDICTIONS.command(
        {
            "--captured": captured_location(model),
            "--model": model.name,
            "--environment": model.environment.name,
            "--version": str(version),
            "--task": model.task,
            "--timestamp": columns.timestamp,
            "--prediction": columns.prediction,
            "--score": _scores(model),
            "--window": str(window_seconds(model)),
            "--min-rows": str(quality.min_rows),
            "--distance": quality.distance if quality.max_prediction_shift else None,
            "--shadow": shadow,
            "--pushgateway": model.environment.pushgateway_url,
        }
    )


def _measure_metric(model: ModelIR, quality: QualityIR) -> Object:
    analysis = model.rollout.analysis
    assert analysis is not None
    container = {
        "name": "compare",
        "image": model.project.images.runtime,
        "command": k8s.literals(_command(model, quality)),
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "2Gi"},
        },
        "securityContext": k8s.container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "name": "quality-measure",
        "interval": f"{int(analysis.interval.seconds)}s",
        "count": analysis.count,
        "failureLimit": analysis.failure_limit,
        "provider": {
            "job": job_spec(model, container, [{"name": "tmp", "emptyDir": {}}], JOB_DEADLINE_S)
        },
    }


def _selector(model: ModelIR) -> str:
    # No `job` label: whether Prometheus keeps the pushed one depends on the Pushgateway's
    # scrape (honor_labels); the series names are Kiln's own.
    return (
        f'model="{model.name}",environment="{model.environment.name}",'
        f'version="{rolled_out_version(model)}"'
    )


def _fresh(model: ModelIR, series: str) -> str:
    """`series` of this version, empty when the step's last push is stale."""
    analysis = model.rollout.analysis
    assert analysis is not None
    selector = _selector(model)
    stale_after = int(analysis.interval.seconds) + JOB_DEADLINE_S
    measured = f"max({contract.MEASURED_AT}{{{selector}}})"
    return f"max({series}{{{selector}}}) and on() (time() - {measured} < {stale_after})"


def quality_metrics(model: ModelIR) -> list[Object]:
    analysis = model.rollout.analysis
    if analysis is None or analysis.quality is None or rolled_out_version(model) is None:
        return []
    quality = analysis.quality
    # The readers start one interval after the Job, so that its first push is there.
    delay = int(analysis.interval.seconds)

    conditions = {
        "quality-rows": at_least(quality.min_rows),
        "prediction-shift": _maybe(at_most, quality.max_prediction_shift),
        "prediction-agreement": _maybe(at_least_share, quality.min_agreement),
        "prediction-mean-abs-difference": _maybe(at_most, quality.max_mean_abs_difference),
    }
    metrics = [_measure_metric(model, quality)]
    for name, condition in conditions.items():
        if condition is not None:
            query = _fresh(model, READERS[name])
            metrics.append(prometheus_metric(model, name, query, condition, delay_s=delay))
    return metrics


def _maybe(
    conditions: Callable[[float], tuple[str, str]], threshold: float | None
) -> tuple[str, str] | None:
    return None if threshold is None else conditions(threshold)
