"""PromQL over Triton's metrics, shared by analysis, autoscaling and alert rules.

Every query selects one model in one namespace behind one Service, so that the
canary's numbers are never mixed with the stable version's. Rates of counters
that may not exist yet fall back to 0 (`or vector(0)`): an analysis must see a
number, not an empty result, before the first request arrives.
"""

from __future__ import annotations

from compiler.ir import ModelIR


def _selector(model: ModelIR, service: str) -> str:
    return f'namespace="{model.namespace}",service="{service}",model="{model.name}"'


def _rate(metric: str, selector: str, window: str) -> str:
    return f"(sum(rate({metric}{{{selector}}}[{window}])) or vector(0))"


def request_rate(model: ModelIR, service: str, window: str = "2m") -> str:
    """Inference requests per second, successful or not."""
    selector = _selector(model, service)
    succeeded = _rate("nv_inference_request_success", selector, window)
    failed = _rate("nv_inference_request_failure", selector, window)
    return f"{succeeded} + {failed}"


def error_rate(model: ModelIR, service: str, window: str = "2m") -> str:
    """Share of failed inference requests, 0 to 1."""
    selector = _selector(model, service)
    failed = _rate("nv_inference_request_failure", selector, window)
    succeeded = _rate("nv_inference_request_success", selector, window)
    return f"{failed} / clamp_min({succeeded} + {failed}, 1e-9)"


def latency_p99_ms(model: ModelIR, service: str) -> str:
    """p99 end-to-end request latency in milliseconds (Triton's summary metric)."""
    selector = _selector(model, service)
    # No request yet means no summary series: report 0 rather than an empty result, which
    # Argo Rollouts counts as a failed measurement (the smoke test sends requests first).
    summary = f'nv_inference_request_summary_us{{{selector},quantile="0.99"}}'
    return f"(max({summary}) or vector(0)) / 1000"


def queue_time_us(model: ModelIR, service: str, window: str = "1m") -> str:
    """Average time a request waits in Triton's queue, in microseconds."""
    selector = _selector(model, service)
    queued = _rate("nv_inference_queue_duration_us", selector, window)
    succeeded = _rate("nv_inference_request_success", selector, window)
    return f"{queued} / clamp_min({succeeded}, 1e-9)"


def gpu_utilization_percent(model: ModelIR, service: str) -> str:
    selector = f'namespace="{model.namespace}",service="{service}"'
    return f"(avg(nv_gpu_utilization{{{selector}}}) or vector(0)) * 100"
