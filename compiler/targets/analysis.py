"""The AnalysisTemplate that decides whether a rollout goes on or aborts.

The metrics, measured against the new version only (the canary or preview Service):

- `requests`: how many requests reached the new pods in the window; the data-exists
  measurement. Below `min_requests` it is inconclusive, never failed;
- `error-rate` and `latency-p99-ms`, from Triton's metrics in Prometheus, when a
  ceiling is known. Their queries are empty below `min_requests` (targets/promql.py);
  the latency's first measurement waits until the warm-up has left Triton's summary;
- `smoke-test`: a Job running `runtime/serving/smoke.py` against the new version:
  readiness, metadata equal to the spec's signature, inference on sample rows, and
  the p99 latency of its own requests under the ceiling.

How Argo Rollouts reads the Prometheus metrics (argo-rollouts, metricproviders/
prometheus/prometheus.go and utils/evaluate/evaluate.go): a vector result becomes
`result`, a list of floats, empty when the query returned no series. Each
condition is an expr-lang expression; one that raises (`result[0]` of an empty list)
makes the measurement an Error. With both conditions set, a measurement is Failed
when failureCondition holds, Successful when only successCondition holds, and
Inconclusive when neither does; a NaN fails every comparison, so NaN is
inconclusive too. Kiln's conditions test `len(result) == 1` first (expr-lang's `&&`
stops there), so an empty result is inconclusive rather than an Error.

How measurements become a decision (analysis/analysis.go, assessMetricStatus): the
metric is Failed after more than failureLimit failed measurements, Inconclusive after
more than inconclusiveLimit inconclusive ones (the rollout pauses for a person to
promote or abort), Error after more than consecutiveErrorLimit errors in a row (the
rollout aborts), and Successful once `count` measurements are taken within the
limits. An Error does not count towards `count`.
"""

from __future__ import annotations

from compiler import names
from compiler.ir import ModelIR
from compiler.targets import ensemble, k8s, promql, strategies, triton
from compiler.targets.analysis_metrics import at_least, at_most, job_spec, prometheus_metric
from compiler.targets.k8s import HTTP_PORT, Object
from compiler.targets.pipeline import data_uri
from compiler.targets.quality import quality_metrics
from compiler.targets.serving import CONFIG_MOUNT, SIGNATURE_FILE

# Triton's p99 summary holds the warm-up requests for its window after the model loads
# (measured on the example: a p99 of 68-88 ms from warm-up batches of 64, where live
# single-row requests take about 6 ms), and a blue-green pre-promotion analysis starts as
# soon as the preview is ready. The first latency measurement waits until they have left
# the summary and Prometheus has scraped since.
LATENCY_DELAY_S = promql.SUMMARY_WINDOW_S + promql.SCRAPE_INTERVAL_S


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


def _prometheus_metrics(model: ModelIR, service: str) -> list[Object]:
    analysis = model.rollout.analysis
    assert analysis is not None
    error, latency = thresholds(model)
    if error is None and latency is None:
        return []
    window = promql.analysis_window(analysis.interval.seconds)
    least = analysis.min_requests
    metrics = [
        prometheus_metric(
            model,
            "requests",
            promql.requests_in_window(model, service, window),
            at_least(least),
        )
    ]
    if error is not None:
        query = promql.analysis_error_ratio(model, service, window, least)
        metrics.append(prometheus_metric(model, "error-rate", query, at_most(error)))
    if latency is not None:
        query = promql.analysis_latency_p99_ms(model, service, window, least)
        metrics.append(
            prometheus_metric(
                model, "latency-p99-ms", query, at_most(latency), delay_s=LATENCY_DELAY_S
            )
        )
    return metrics


def sample_data(model: ModelIR) -> str | None:
    """Rows to send: the monitoring reference set, which holds real feature values."""
    if model.monitoring is None:
        return None
    return data_uri(model, model.monitoring.reference.uri)


def _reference_args(model: ModelIR) -> list[str]:
    """What the smoke Job computes its reference answers with: the served artifacts, or an
    ensemble's config and every step's artifact (the steps run in process)."""
    args: list[str] = []
    if model.ensemble is not None:
        args += ["--config", f"{CONFIG_MOUNT}/{triton.CONFIG_FILE}"]
        for step in model.ensemble.steps:
            args += ["--step", f"{step.name}={CONFIG_MOUNT}/{ensemble.config_key(step.name)}"]
            args += ["--step-artifact", f"{step.name}={step.artifact.uri}"]
            if step.artifact.sha256:
                args += ["--step-sha256", f"{step.name}={step.artifact.sha256}"]
        return args
    for artifact in model.served:
        args += ["--artifact", f"{artifact.version}={artifact.uri}"]
        if artifact.sha256:
            args += ["--sha256", f"{artifact.version}={artifact.sha256}"]
    return args


def _smoke_metric(model: ModelIR, service: str) -> Object:
    url = f"http://{k8s.service_host(model, service)}:{HTTP_PORT}"
    args = ["python", "-m", "runtime.serving.smoke", "--url", url]
    args += ["--signature", f"{CONFIG_MOUNT}/{SIGNATURE_FILE}", "--wait", "120"]
    if model.ensemble is None and model.format.name != "onnx":
        # The config names the format and FIL's parameters, which the library reference
        # applies (an ONNX model needs none of it; its Jobs stay as they were).
        args += ["--config", f"{CONFIG_MOUNT}/{triton.CONFIG_FILE}"]
    args += _reference_args(model)
    sample = sample_data(model)
    if sample is not None:
        args += ["--data", sample]
    _, latency = thresholds(model)
    if latency is not None:
        # The one place where the traffic is known: the Job's own requests.
        args += ["--max-latency-p99-ms", f"{latency:g}"]
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
    volumes = [
        {
            "name": "triton-config",
            "configMap": {"name": names.derived(model.name, "-triton-config")},
        },
        {"name": "tmp", "emptyDir": {}},
    ]
    return {
        "name": "smoke-test",
        "count": 1,
        "failureLimit": 0,
        "provider": {"job": job_spec(model, container, volumes, deadline_s=300)},
    }


def analysis_template(model: ModelIR) -> Object | None:
    analysis = model.rollout.analysis
    service = strategies.canary_service(model)
    if analysis is None or service is None:
        return None
    metrics = _prometheus_metrics(model, service) + quality_metrics(model)
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
