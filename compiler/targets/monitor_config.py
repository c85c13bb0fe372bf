"""The monitor job's config of one (model, environment), rendered from the IR.

The document's shape is `runtime.contract.monitor_config.MonitorConfig`, which the job
reads back; building it through that model here means the compiler can never write a
config the job would refuse.
"""

from __future__ import annotations

from typing import Any, Literal

from compiler.ir import ModelIR
from runtime.contract.monitor_config import MonitorConfig
from runtime.contract.vocabulary import SERVING_SIGNALS


def data_location(uri: str, data_root: str) -> str:
    """A monitoring data URI in an environment: relative URIs sit under the data store."""
    if "://" in uri:
        return uri
    return f"{data_root.rstrip('/')}/{uri}"


def _format(uri: str, declared: str | None) -> Literal["parquet", "csv"]:
    if declared == "csv" or (declared is None and uri.lower().rstrip("/").endswith(".csv")):
        return "csv"
    return "parquet"


def config_from_ir(model: ModelIR) -> MonitorConfig:
    """The monitor config of one (model, environment). Raises ValueError without monitoring.

    Relative data URIs resolve against the environment's data store; serving alerts
    (latency, error rate) are left out, as are routes only they use.
    """
    monitoring = model.monitoring
    if monitoring is None:
        raise ValueError(f"model {model.name!r} has no monitoring block")
    spec = model.featureset.spec
    features = [
        {
            "name": f.name,
            "dtype": f.dtype,
            "kind": f.kind,
            "range": f.range.model_dump() if f.range else None,
            "values": list(f.values) if f.values is not None else None,
        }
        for f in spec.features
    ]
    cols = monitoring.columns
    score = dict(cols.score) if isinstance(cols.score, dict) else cols.score
    rules = [a for a in model.alerts if a.when.signal not in SERVING_SIGNALS]
    used = {a.route for a in rules}
    data_root = model.storage.data

    def source(dataset: Any) -> dict[str, Any]:
        uri = data_location(dataset.uri, data_root)
        return {"uri": uri, "format": _format(uri, dataset.format), "lookback": dataset.lookback}

    drift = monitoring.drift
    raw: dict[str, Any] = {
        "model": model.name,
        "environment": model.environment.name,
        "version": max(a.version for a in model.served),
        "task": model.task,
        "columns": {
            "timestamp": cols.timestamp,
            "prediction": cols.prediction,
            "score": score,
            "target": cols.target or model.target,
            "features": features,
        },
        "reference": source(monitoring.reference),
        "analysis": source(monitoring.analysis),
        "chunking": monitoring.chunking.model_dump(),
        "drift": drift.model_dump() if drift else None,
        "performance": monitoring.performance.model_dump() if monitoring.performance else None,
        "data_quality": monitoring.data_quality.model_dump() if monitoring.data_quality else None,
        "alerts": [
            {
                "name": a.name,
                "signal": a.when.signal,
                "metric": a.when.metric,
                "feature": a.when.feature,
                "below": a.when.below,
                "above": a.when.above,
                "for": a.when.for_,
                "severity": a.severity,
                "route": a.route,
            }
            for a in rules
        ],
        "routes": [
            r.model_dump(exclude_none=True)
            for r in sorted(model.routes, key=lambda r: r.name)
            if r.name in used
        ],
    }
    return MonitorConfig.model_validate(raw)
