"""The job's outputs: results.json, one parquet per calculator, Prometheus metrics.

results.json (schema `kiln.monitor.results/v1`, keys sorted, NaN written as null) is
described field by field in docs/monitoring.md; `RESULTS_SCHEMA` names it.
"""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from runtime.contract.monitor_config import MonitorConfig
from runtime.contract.secret_http import http_url
from runtime.monitor.alerts import DeliveryRecord
from runtime.monitor.chunks import ChunkInfo
from runtime.monitor.data import Dataset
from runtime.monitor.rules import AlertEvent, iso
from runtime.monitor.tidy import TIDY_COLUMNS, Outcome

RESULTS_SCHEMA = "kiln.monitor.results/v1"
METRIC_PREFIX = "kiln_monitor_"


@dataclass
class Run:
    """Everything one run produced, success or not."""

    config: MonitorConfig
    started: float  # unix time
    finished: float = 0.0
    reference: Dataset | None = None
    analysis: Dataset | None = None
    chunks: list[ChunkInfo] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    error: dict[str, str] | None = None
    files: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    load_seconds: float = 0.0
    output_seconds: float = 0.0

    @property
    def failed_calculators(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def failed_deliveries(self) -> list[DeliveryRecord]:
        return [d for d in self.deliveries if not d.ok]

    @property
    def status(self) -> str:
        if self.error or self.failed_calculators:
            return "failed"
        if self.failed_deliveries:
            return "delivery_failed"
        return "alerts" if self.events else "ok"

    @property
    def exit_code(self) -> int:
        return 1 if self.status in ("failed", "delivery_failed") else 0

    def tables(self) -> dict[str, pd.DataFrame]:
        return {o.signal: o.table for o in self.outcomes if o.table is not None}


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, timestamps -> ISO 8601."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return iso(value)
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NaT:
        return None
    return value


def _dataset(data: Dataset | None, uri: str, lookback: str | None, ts: str) -> dict[str, Any]:
    if data is None:
        return {
            "uri": uri,
            "files": None,
            "rows": None,
            "rows_read": None,
            "start": None,
            "end": None,
            "lookback": lookback,
            "notes": [],
        }
    times = data.frame[ts]
    return {
        "uri": data.uri,
        "files": len(data.files),
        "rows": data.rows,
        "rows_read": data.rows_read,
        "start": iso(times.min()),
        "end": iso(times.max()),
        "lookback": lookback,
        "notes": list(data.notes),
    }


_NOT_PER_RECORD = ("signal", "period", "sampling_error", "realized")


def signal_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Analysis rows of a tidy table, for results.json."""
    rows = table[table["period"] == "analysis"]
    # Every tidy column but those results.json states once or leaves out.
    keep = [c for c in TIDY_COLUMNS if c not in _NOT_PER_RECORD]
    records = []
    for raw in rows[keep].to_dict(orient="records"):
        record = _clean(raw)
        record["chunk_start"] = iso(raw["chunk_start"])
        record["chunk_end"] = iso(raw["chunk_end"])
        records.append(record)
    return records


def results_document(run: Run) -> dict[str, Any]:
    config = run.config
    ts = config.columns.timestamp
    document: dict[str, Any] = _clean(
        {
            "schema": RESULTS_SCHEMA,
            "model": config.model,
            "environment": config.environment,
            "version": config.version,
            "task": config.task,
            "status": run.status,
            "exit_code": run.exit_code,
            "error": run.error,
            "run": {
                "started_at": iso(pd.Timestamp(run.started, unit="s")),
                "finished_at": iso(pd.Timestamp(run.finished, unit="s")),
                "duration_seconds": round(run.finished - run.started, 3),
                "versions": run.versions,
            },
            "data": {
                "reference": _dataset(
                    run.reference, config.reference.uri, config.reference.lookback, ts
                ),
                "analysis": _dataset(
                    run.analysis, config.analysis.uri, config.analysis.lookback, ts
                ),
                "chunking": config.chunking.model_dump(exclude_none=True),
            },
            "chunks": [
                {
                    "index": c.index,
                    "key": c.key,
                    "start": iso(c.start),
                    "end": iso(c.end),
                    "rows": c.rows,
                }
                for c in run.chunks
            ],
            "calculators": [
                {
                    "name": o.name,
                    "signal": o.signal,
                    "status": o.status,
                    "seconds": round(o.seconds, 3),
                    "plot_seconds": round(o.plot_seconds, 3),
                    "message": o.message,
                    "detail": o.detail,
                    "warnings": o.warnings,
                    "file": run.files.get(o.name),
                }
                for o in run.outcomes
            ],
            "signals": {
                o.signal: signal_records(o.table) for o in run.outcomes if o.table is not None
            },
            "alerts": [e.as_dict() for e in run.events],
            "deliveries": [d.as_dict() for d in run.deliveries],
        }
    )
    return document


def write_results(run: Run, out: Path) -> Path:
    path = out / "results.json"
    text = json.dumps(
        results_document(run), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
    )
    path.write_text(text + "\n", encoding="utf-8")
    return path


def write_tables(run: Run, out: Path) -> None:
    """One parquet per calculator with its tidy table (reference and analysis chunks)."""
    for outcome in run.outcomes:
        if outcome.table is None:
            continue
        name = f"{outcome.name}.parquet"
        table = outcome.table.copy()
        table["alert"] = table["alert"].astype("boolean")
        table["note"] = table["note"].astype("string")
        table.to_parquet(out / name, index=False)
        run.files[outcome.name] = name


# --- Prometheus -----------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Metrics:
    """A Prometheus text exposition, built family by family."""

    def __init__(self, base: dict[str, str], prefix: str = METRIC_PREFIX) -> None:
        self.base = base
        self.prefix = prefix
        self.families: dict[str, tuple[str, str, list[str]]] = {}

    def add(
        self, name: str, help_text: str, value: float, kind: str = "gauge", **labels: str
    ) -> None:
        full = self.prefix + name
        family = self.families.setdefault(full, (help_text, kind, []))
        merged = {**self.base, **labels}
        rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(merged.items()))
        family[2].append(f"{full}{{{rendered}}} {_number(value)}")

    def text(self) -> str:
        lines = []
        for name in sorted(self.families):
            help_text, kind, samples = self.families[name]
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(sorted(samples))
        return "\n".join(lines) + "\n"


def _latest(table: pd.DataFrame) -> Iterable[Any]:
    """Per (subject, method), the row of the most recent analysis chunk."""
    rows = table[table["period"] == "analysis"]
    if rows.empty:
        return []
    last = rows.sort_values("chunk_index", kind="stable").groupby(["subject", "method"]).tail(1)
    rows_out: Iterable[Any] = last.sort_values(["subject", "method"]).itertuples()
    return rows_out


# Per signal: the metric's name, its help text, and the label naming the subject (None:
# the subject is the method, as for multivariate drift).
SIGNAL_METRICS: dict[str, tuple[str, str, str | None]] = {
    "drift": ("drift", "Univariate drift statistic, latest chunk.", "feature"),
    "multivariate_drift": ("multivariate_drift", "Multivariate drift, latest chunk.", None),
    "estimated_performance": (
        "estimated_performance",
        "Estimated performance, latest chunk.",
        "metric",
    ),
    "realized_performance": (
        "realized_performance",
        "Realised performance, latest chunk.",
        "metric",
    ),
    "missing_values": ("missing_values", "Share of missing values, latest chunk.", "feature"),
    "unseen_values": ("unseen_values", "Share of unseen values, latest chunk.", "feature"),
    "range": ("out_of_range", "Share of values outside the declared range.", "feature"),
}


def build_metrics(run: Run) -> Metrics:
    """The run's Prometheus metrics: the run itself, each signal's latest chunk, alerts."""
    config = run.config
    metrics = Metrics({"model": config.model, "environment": config.environment})
    _run_metrics(run, metrics)
    _signal_metrics(run, metrics)
    _alert_metrics(run, metrics)
    return metrics


def _run_metrics(run: Run, metrics: Metrics) -> None:
    metrics.add(
        "last_run_timestamp_seconds",
        "Unix time the monitor run finished.",
        run.finished,
        version=run.config.version_label,
    )
    metrics.add(
        "last_run_success",
        "1 when the run computed everything and delivered it.",
        float(run.exit_code == 0),
    )
    metrics.add("run_duration_seconds", "Wall time of the run.", run.finished - run.started)
    if run.analysis is not None:
        metrics.add("analysis_rows", "Rows analysed (after the lookback).", run.analysis.rows)
    metrics.add("chunks", "Analysis chunks.", len(run.chunks))
    for o in run.outcomes:
        metrics.add(
            "calculator_duration_seconds", "Seconds per calculator.", o.seconds, calculator=o.name
        )
        metrics.add(
            "calculator_success",
            "1 when the calculator ran and its result is sound.",
            float(o.status != "failed"),
            calculator=o.name,
        )


def _signal_metrics(run: Run, metrics: Metrics) -> None:
    tables = run.tables()
    for signal, (name, help_text, subject_label) in SIGNAL_METRICS.items():
        table = tables.get(signal)
        if table is None:
            continue
        for row in _latest(table):
            labels = {"method": str(row.method)}
            if subject_label:
                labels[subject_label] = str(row.subject)
            else:
                labels["method"] = str(row.subject)
            value_name = name if signal != "drift" else "drift_value"
            metrics.add(value_name, help_text, float(row.value), **labels)
            if row.alert is not None and not pd.isna(row.alert):
                metrics.add(
                    f"{name}_alert",
                    f"1 when NannyML flags {signal} in the latest chunk.",
                    float(bool(row.alert)),
                    **labels,
                )


def _alert_metrics(run: Run, metrics: Metrics) -> None:
    counts: dict[tuple[str, str], int] = {}
    for e in run.events:
        counts[(e.name, e.severity)] = counts.get((e.name, e.severity), 0) + 1
    for rule in run.config.alerts:
        metrics.add(
            "alert_events",
            "Alert events this run raised, per rule.",
            counts.get((rule.name, rule.severity), 0),
            alert=rule.name,
            severity=rule.severity,
        )
    for d in run.deliveries:
        metrics.add(
            "alert_delivery_success",
            "1 when the route accepted this run's alerts.",
            float(d.ok),
            route=d.route,
            target=d.kind,
        )


def write_metrics(run: Run, out: Path) -> tuple[Path, str]:
    text = build_metrics(run).text()
    path = out / "metrics.prom"
    path.write_text(text, encoding="utf-8")
    return path, text


def push_metrics(url: str, config: MonitorConfig, text: str, timeout: float = 10.0) -> None:
    """PUT to a Pushgateway group job=kiln_monitor/model/environment (replaces the group)."""
    group = [("model", config.model), ("environment", config.environment)]
    push_group(url, "kiln_monitor", group, text, timeout)


def push_group(
    url: str, job: str, group: list[tuple[str, str]], text: str, timeout: float = 10.0
) -> None:
    """PUT `text` to the Pushgateway group job/<job>/<label>/<value>..., replacing it whole
    (a series the last push left out is gone)."""
    quote = urllib.parse.quote
    path = "".join(f"/{label}/{quote(value, safe='')}" for label, value in group)
    target = f"{url.rstrip('/')}/metrics/job/{quote(job, safe='')}{path}"
    if not http_url(target):  # urllib would also open file:// and ftp:// URLs
        raise OSError(f"the Pushgateway URL is not http(s): {url}")
    data = text.encode("utf-8")
    request = urllib.request.Request(target, data=data, method="PUT")  # noqa: S310 http(s)
    request.add_header("Content-Type", "text/plain; version=0.0.4")
    with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 http(s), no secret
        pass
