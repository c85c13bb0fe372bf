"""PromQL over Triton's metrics, shared by analysis, autoscaling and alert rules.

Every query selects one model in one namespace behind one Service, so that the
canary's numbers are never mixed with the stable version's.

Two kinds of query, because "no data" means different things to their readers:

- The rollout analysis must tell "no data" from "good" and from "bad". Its queries
  never fall back to a number: when Prometheus has no series (nothing scraped, a
  wrong selector) the result is empty, and when the new pods saw fewer than
  `min_requests` requests in the window the `and on()` gate empties it as well.
  Triton's latency summaries exist from model load and read NaN once their 60 s
  window holds no request (the warm-up requests are in the first window), so a p99
  can be NaN while the counters are present. The AnalysisTemplate's conditions
  (targets/analysis.py) count an empty or NaN result as inconclusive.
- Autoscaling, dashboards and alerts read absence as "no load": their rates fall
  back to 0 with `or vector(0)` (KEDA would otherwise report an error, and an alert
  on an error ratio must not fire on a model nobody calls).
"""

from __future__ import annotations

from compiler.ir import ModelIR
from compiler.targets import capture

# How often the rendered ServiceMonitor scrapes Triton. A rate or increase needs two
# samples in its window; Prometheus's own advice is a window of four scrapes or more.
SCRAPE_INTERVAL_S = 15
# Triton's latency summaries keep an observation for 60 s (a fixed window: the server has
# no flag for it), warm-up requests included.
SUMMARY_WINDOW_S = 60
MIN_WINDOW_S = 4 * SCRAPE_INTERVAL_S
REQUEST_COUNTERS = ("nv_inference_request_success", "nv_inference_request_failure")
P99_SUMMARY = "nv_inference_request_summary_us"


def _selector(model: ModelIR, service: str) -> str:
    return f'namespace="{model.namespace}",service="{service}",model="{model.name}"'


def _rate(metric: str, selector: str, window: str) -> str:
    return f"(sum(rate({metric}{{{selector}}}[{window}])) or vector(0))"


def request_rate(model: ModelIR, service: str, window: str = "2m") -> str:
    """Inference requests per second, successful or not (0 without series)."""
    selector = _selector(model, service)
    succeeded = _rate("nv_inference_request_success", selector, window)
    failed = _rate("nv_inference_request_failure", selector, window)
    return f"{succeeded} + {failed}"


def error_rate(model: ModelIR, service: str, window: str = "2m") -> str:
    """Share of failed inference requests, 0 to 1 (0 without series: alerts, dashboards)."""
    selector = _selector(model, service)
    failed = _rate("nv_inference_request_failure", selector, window)
    succeeded = _rate("nv_inference_request_success", selector, window)
    return f"{failed} / clamp_min({succeeded} + {failed}, 1e-9)"


def latency_p99_ms(model: ModelIR, service: str) -> str:
    """p99 end-to-end request latency in milliseconds (alerts, dashboards)."""
    selector = _selector(model, service)
    summary = f'{P99_SUMMARY}{{{selector},quantile="0.99"}}'
    return f"(max({summary}) or vector(0)) / 1000"


# --- the rollout analysis: empty when there is nothing to judge -------------------------------


def analysis_window(interval_s: float) -> str:
    """The window one analysis measurement judges: the interval since the previous one,
    but never fewer than four scrapes."""
    return f"{max(int(interval_s), MIN_WINDOW_S)}s"


def _increase(metric: str, selector: str, window: str) -> str:
    # No `or vector(0)`: without a series the sum is empty, and so is every query using it.
    return f"sum(increase({metric}{{{selector}}}[{window}]))"


def requests_in_window(model: ModelIR, service: str, window: str) -> str:
    """Requests that reached the Service's pods in the window, successful or not."""
    selector = _selector(model, service)
    return " + ".join(_increase(metric, selector, window) for metric in REQUEST_COUNTERS)


def _gated(query: str, model: ModelIR, service: str, window: str, min_requests: int) -> str:
    """`query` where at least `min_requests` reached the pods in the window, else empty."""
    requests = requests_in_window(model, service, window)
    return f"({query}) and on() (({requests}) >= {min_requests})"


def analysis_error_ratio(model: ModelIR, service: str, window: str, min_requests: int) -> str:
    """Failed share of the window's requests; empty below `min_requests`."""
    failed = _increase("nv_inference_request_failure", _selector(model, service), window)
    ratio = f"{failed} / ({requests_in_window(model, service, window)})"
    return _gated(ratio, model, service, window, min_requests)


def analysis_latency_p99_ms(model: ModelIR, service: str, window: str, min_requests: int) -> str:
    """The highest pod p99 in ms (Triton's 60 s summary); empty below `min_requests`, NaN
    when every pod's summary window is empty (`max` skips a NaN while any pod has a value)."""
    summary = f'{P99_SUMMARY}{{{_selector(model, service)},quantile="0.99"}}'
    return _gated(f"max({summary}) / 1000", model, service, window, min_requests)


def _queues(model: ModelIR, service: str) -> str:
    """Whose queue time a request of the model waits in: its own, or an ensemble's steps'.
    Triton reports an ensemble's requests under the ensemble's name and its steps' internal
    requests under theirs; the ensemble's own queue time is only its scheduler's hand-off
    (measured on the local Triton 2.51: 12 us over 5 requests, against some 1,500 us for each
    step), so the steps' queues are the ones that grow under load."""
    if model.ensemble is None:
        return _selector(model, service)
    # Step names are `<model>.<step>`, DNS labels and a dot: the dot is the only character a
    # regular expression reads otherwise, escaped here for RE2 and again for the string.
    names = [step.name for step in model.ensemble.steps]
    if capture.has_capture_step(model):  # a request waits in the capture step's queue too
        names.append(capture.capture_step(model))
    steps = "|".join(name.replace(".", "\\\\.") for name in names)
    return f'namespace="{model.namespace}",service="{service}",model=~"{steps}"'


def queue_time_us(model: ModelIR, service: str, window: str = "1m") -> str:
    """Average time a request waits in Triton's queues, in microseconds (for an ensemble,
    the sum over its steps per ensemble request)."""
    queued = _rate("nv_inference_queue_duration_us", _queues(model, service), window)
    succeeded = _rate("nv_inference_request_success", _selector(model, service), window)
    return f"{queued} / clamp_min({succeeded}, 1e-9)"


def gpu_utilization_percent(model: ModelIR, service: str) -> str:
    selector = f'namespace="{model.namespace}",service="{service}"'
    return f"(avg(nv_gpu_utilization{{{selector}}}) or vector(0)) * 100"
