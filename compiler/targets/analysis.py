"""The AnalysisTemplate that decides whether a rollout goes on or aborts.

Error rate and p99 latency of the new version come from Prometheus (Triton's
metrics behind the canary or preview Service); the smoke test is a Job running
`runtime/serving/smoke.py` against the new version: readiness, metadata equal to the
spec's signature, and inference on sample rows.
"""

from __future__ import annotations

from compiler import names
from compiler.ir import ModelIR
from compiler.targets import k8s, promql, strategies
from compiler.targets.k8s import HTTP_PORT, Object
from compiler.targets.pipeline import data_uri
from compiler.targets.serving import CONFIG_MOUNT, SIGNATURE_FILE


def thresholds(model: ModelIR) -> tuple[float | None, float | None]:
    """Error-rate and p99 ceilings: the analysis's own, else the SLO's."""
    analysis, slo = model.rollout.analysis, model.serving.slo
    if analysis is None:
        return None, None
    error = (
        analysis.max_error_rate
        if analysis.max_error_rate is not None
        else (slo.error_rate if slo else None)
    )
    latency = (
        analysis.max_latency_p99_ms
        if analysis.max_latency_p99_ms is not None
        else (slo.latency_p99_ms if slo else None)
    )
    return error, latency


def _prometheus_metric(model: ModelIR, name: str, query: str, condition: str) -> Object:
    analysis = model.rollout.analysis
    assert analysis is not None
    return {
        "name": name,
        "interval": f"{int(analysis.interval.seconds)}s",
        "count": analysis.count,
        "failureLimit": analysis.failure_limit,
        "successCondition": condition,
        "provider": {"prometheus": {"address": model.environment.prometheus_url, "query": query}},
    }


def sample_data(model: ModelIR) -> str | None:
    """Rows to send: the monitoring reference set, which holds real feature values."""
    if model.monitoring is None:
        return None
    return data_uri(model, model.monitoring.reference.uri)


def _smoke_metric(model: ModelIR, service: str) -> Object:
    url = f"http://{k8s.service_host(model, service)}:{HTTP_PORT}"
    args = ["python", "-m", "runtime.serving.smoke", "--url", url]
    args += ["--signature", f"{CONFIG_MOUNT}/{SIGNATURE_FILE}", "--wait", "120"]
    for artifact in model.served:
        args += ["--artifact", f"{artifact.version}={artifact.uri}"]
        if artifact.sha256:
            args += ["--sha256", f"{artifact.version}={artifact.sha256}"]
    sample = sample_data(model)
    if sample is not None:
        args += ["--data", sample]
    container = {
        "name": "smoke",
        "image": model.project.images.runtime,
        "command": k8s.literals(args),
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": k8s.container_security(),
        "volumeMounts": [
            {"name": "triton-config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            # The artifact is downloaded for the in-process reference: a writable /tmp.
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "name": "smoke-test",
        "count": 1,
        "failureLimit": 0,
        "provider": {
            "job": {
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": 300,
                    "ttlSecondsAfterFinished": 3600,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            # The serving account can read the model store (workload identity).
                            "serviceAccountName": model.name,
                            "automountServiceAccountToken": False,
                            "securityContext": k8s.pod_security(),
                            "containers": [container],
                            "volumes": [
                                {
                                    "name": "triton-config",
                                    "configMap": {
                                        "name": names.derived(model.name, "-triton-config")
                                    },
                                },
                                {"name": "tmp", "emptyDir": {}},
                            ],
                        }
                    },
                }
            }
        },
    }


def analysis_template(model: ModelIR) -> Object | None:
    analysis = model.rollout.analysis
    service = strategies.canary_service(model)
    if analysis is None or service is None:
        return None
    error, latency = thresholds(model)
    metrics: list[Object] = []
    if error is not None:
        metrics.append(
            _prometheus_metric(
                model, "error-rate", promql.error_rate(model, service), f"result[0] <= {error:g}"
            )
        )
    if latency is not None:
        metrics.append(
            _prometheus_metric(
                model,
                "latency-p99-ms",
                promql.latency_p99_ms(model, service),
                f"result[0] <= {latency:g}",
            )
        )
    if analysis.smoke_test:
        metrics.append(_smoke_metric(model, service))
    if not metrics:
        return None
    return k8s.resource(
        "argoproj.io/v1alpha1",
        "AnalysisTemplate",
        k8s.metadata(model, names.derived(model.name, "-analysis"), "serving"),
        spec={"metrics": metrics},
    )
