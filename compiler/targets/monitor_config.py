"""The monitor job's config of one (model, environment), rendered from the IR.

The document's shape is `runtime.contract.monitor_config.MonitorConfig`, which the job
reads back; building it through that model here means the compiler can never write a
config the job would refuse.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from compiler.ir import ModelIR
from compiler.ir.monitoring import (
    ColumnsIR,
    DataQualityIR,
    DatasetIR,
    DriftIR,
    PerformanceIR,
    RouteIR,
)
from compiler.rules.locations import inside, place_under
from runtime.contract.capture import REQUEST_ID, captured_uri, labels_uri
from runtime.contract.monitor_config import MonitorConfig
from runtime.contract.vocabulary import SERVING_SIGNALS


def data_location(uri: str, data_root: str) -> str:
    """A monitoring data URI in an environment: relative URIs sit under the data store."""
    return place_under(uri, data_root)


def _format(uri: str, declared: str | None) -> Literal["parquet", "csv"]:
    if declared == "csv" or (declared is None and uri.lower().rstrip("/").endswith(".csv")):
        return "csv"
    return "parquet"


def _source(dataset: DatasetIR, data_root: str) -> dict[str, Any]:
    uri = data_location(dataset.uri, data_root)
    lookback = None if dataset.lookback is None else dataset.lookback.text
    return {"uri": uri, "format": _format(uri, dataset.format), "lookback": lookback}


def _labels(model: ModelIR, analysis: str) -> dict[str, Any]:
    """Where late ground truth is joined from, and the keys it is joined on, in order.

    Served traffic (the analysis data lies in the captured folder) carries its request
    ids, and the FeatureSet's id column when that is one of the captured inputs; other
    data (files, batch predictions) is joined by the FeatureSet's id column. The job
    refuses labels when the analysis rows carry none of the keys (runtime/monitor/labels.py).
    """
    entity = model.featureset.spec.entity
    keys = [entity]
    if model.capture is not None and inside(analysis, captured_uri(model.storage.data, model.name)):
        keys = [REQUEST_ID] + ([entity] if entity in model.capture.inputs else [])
    return {"uri": labels_uri(model.storage.data, model.name), "keys": keys}


def _score(columns: ColumnsIR) -> str | dict[str, str] | None:
    # The IR holds per-class scores as pairs; the config, like the spec, as a mapping.
    score = columns.score
    return score if score is None or isinstance(score, str) else dict(score)


def _route(route: RouteIR) -> dict[str, Any]:
    """A route as the config writes it: only the target that is set."""
    written: dict[str, Any] = {"name": route.name}
    if route.alertmanager is not None:
        written["alertmanager"] = asdict(route.alertmanager)
    if route.slack is not None:
        slack = route.slack
        written["slack"] = {"webhook_secret": asdict(slack.webhook_secret)}
        if slack.channel is not None:
            written["slack"]["channel"] = slack.channel
    if route.webhook is not None:
        headers = {name: asdict(ref) for name, ref in route.webhook.headers}
        webhook = route.webhook
        written["webhook"] = {"headers": headers}
        if webhook.url_secret is not None:
            written["webhook"]["url_secret"] = asdict(webhook.url_secret)
        else:
            written["webhook"]["url"] = webhook.url
    return written


def _block(block: DriftIR | PerformanceIR | DataQualityIR | None) -> dict[str, Any] | None:
    """An optional block of the monitoring IR, field for field as the config takes it."""
    return None if block is None else asdict(block)


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
            "range": asdict(f.range) if f.range else None,
            "values": list(f.values) if f.values is not None else None,
        }
        for f in spec.features
    ]
    cols = monitoring.columns
    rules = [a for a in model.alerts if a.when.signal not in SERVING_SIGNALS]
    used = {a.route for a in rules}
    data_root = model.storage.data
    analysis = _source(monitoring.analysis, data_root)
    raw: dict[str, Any] = {
        "model": model.name,
        "environment": model.environment.name,
        "version": max((a.version for a in model.served), default=None),
        "task": model.task,
        "columns": {
            "timestamp": cols.timestamp,
            "prediction": cols.prediction,
            "score": _score(cols),
            "target": cols.target or model.target,
            "features": features,
        },
        "reference": _source(monitoring.reference, data_root),
        "analysis": analysis,
        "labels": _labels(model, analysis["uri"]),
        "chunking": asdict(monitoring.chunking),
        "drift": _block(monitoring.drift),
        "performance": _block(monitoring.performance),
        "data_quality": _block(monitoring.data_quality),
        "alerts": [
            {
                "name": a.name,
                "signal": a.when.signal,
                "metric": a.when.metric,
                "feature": a.when.feature,
                "below": a.when.below,
                "above": a.when.above,
                "for": None if a.when.for_ is None else a.when.for_.text,
                "severity": a.severity,
                "route": a.route,
            }
            for a in rules
        ],
        "routes": [_route(r) for r in sorted(model.routes, key=lambda r: r.name) if r.name in used],
    }
    return MonitorConfig.model_validate(raw)
