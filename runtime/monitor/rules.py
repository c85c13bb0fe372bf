"""Alert rules -> alert events, one per (rule, feature or metric, chunk) that fires.

A rule fires on an analysis chunk when
- it has `below` and/or `above`: the signal's value is below / above them;
- it has neither: NannyML's alert flag of the signal is set (thresholds from the reference);
- for `drift`, a feature fires when any of its drift methods does;
- with `for`, only once the condition has held on consecutive chunks spanning that long
  (from the first chunk's start to the current chunk's end, to the second).

Every event carries a de-duplication key: the sha256 of
`model/environment/alert/subject/chunk`, where subject is the feature or metric and chunk is
`<start ISO>/<end ISO>` of the chunk's time span. Chunk spans, not NannyML's positional
chunk keys ("[0:4999]"), so that a chunk has the same identity in every run that sees the
same rows (stable across runs with period chunking; with size or count chunking, chunks
move with the lookback window and so do their keys).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from itertools import groupby
from typing import Any

import pandas as pd

from runtime.contract.durations import duration_seconds
from runtime.contract.monitor_config import AlertRule, MonitorConfig

FEATURE_SIGNALS = ("drift", "missing_values", "unseen_values", "range")
METRIC_SIGNALS = ("estimated_performance", "realized_performance", "multivariate_drift")


@dataclass(frozen=True)
class AlertEvent:
    """One firing of one rule on one chunk."""

    name: str
    severity: str
    route: str
    model: str
    environment: str
    version: int | None  # None: no version is served yet
    signal: str
    feature: str | None
    metric: str | None
    method: str | None
    chunk_key: str
    chunk_index: int
    chunk_start: str
    chunk_end: str
    value: float
    threshold_lower: float | None
    threshold_upper: float | None
    threshold_source: str  # "rule" (below/above) or "nannyml" (reference-based flag)
    dedup_key: str
    summary: str

    @property
    def subject(self) -> str:
        return self.feature or self.metric or ""

    @property
    def chunk(self) -> str:
        return f"{self.chunk_start}/{self.chunk_end}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def iso(value: Any) -> str:
    """ISO 8601 of a timestamp, UTC, to the millisecond when it has a fraction."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    text: str = stamp.isoformat(timespec="milliseconds" if stamp.microsecond else "seconds")
    return text + "Z"


def dedup_key(model: str, environment: str, alert: str, subject: str, chunk: str) -> str:
    text = "/".join((model, environment, alert, subject, chunk))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fires(rule: AlertRule, value: float, flag: Any) -> bool:
    if rule.below is None and rule.above is None:
        return flag is True or (flag is not None and not pd.isna(flag) and bool(flag))
    if value is None or math.isnan(value):
        return False
    return (rule.below is not None and value < rule.below) or (
        rule.above is not None and value > rule.above
    )


def _rows(rule: AlertRule, table: pd.DataFrame) -> pd.DataFrame:
    rows = table[table["period"] == "analysis"]
    if "note" in rows.columns:
        rows = rows[rows["note"].isna() | (rows["signal"] != "realized_performance")]
    if rule.signal in FEATURE_SIGNALS and rule.feature:
        rows = rows[rows["subject"] == rule.feature]
    if rule.signal in METRIC_SIGNALS and rule.metric:
        rows = rows[rows["subject"] == rule.metric]
    return rows


def _describe(rule: AlertRule, signal: str, subject: str, method: str | None) -> str:
    what = {
        "drift": f"drift of feature {subject} ({method})",
        "multivariate_drift": f"multivariate drift ({subject})",
        "estimated_performance": f"estimated {subject}",
        "realized_performance": f"realised {subject}",
        "missing_values": f"share of missing values of {subject}",
        "unseen_values": f"share of unseen values of {subject}",
        "range": f"share of values of {subject} outside the declared range",
    }[signal]
    return what


def _bounds(rule: AlertRule, lower: float, upper: float) -> tuple[float | None, float | None]:
    if rule.below is not None or rule.above is not None:
        return rule.below, rule.above
    return (None if math.isnan(lower) else lower), (None if math.isnan(upper) else upper)


def evaluate(config: MonitorConfig, tables: dict[str, pd.DataFrame]) -> list[AlertEvent]:
    """Events of every rule on the analysis chunks of the signals that were computed."""
    events: list[AlertEvent] = []
    for rule in config.alerts:
        table = tables.get(rule.signal)
        if table is None or table.empty:
            continue
        events.extend(_evaluate_rule(config, rule, _rows(rule, table)))
    return sorted(events, key=lambda e: (e.name, e.subject, e.chunk_index))


def _evaluate_rule(config: MonitorConfig, rule: AlertRule, rows: pd.DataFrame) -> list[AlertEvent]:
    needed = duration_seconds(rule.for_) if rule.for_ else 0.0
    events = []
    # One pass over the rows in (subject, chunk, method) order: a groupby per subject and
    # chunk cost more than the rule itself (docs/performance.md).
    ordered = rows.sort_values(["subject", "chunk_index", "method"], kind="stable")
    for subject, by_subject in groupby(ordered.itertuples(), key=lambda r: r.subject):
        streak_start: pd.Timestamp | None = None
        for _, chunk in groupby(by_subject, key=lambda r: r.chunk_index):
            firing = [r for r in chunk if _fires(rule, float(r.value), r.alert)]
            if not firing:
                streak_start = None
                continue
            first = firing[0]
            if streak_start is None:
                streak_start = pd.Timestamp(first.chunk_start)
            # A period chunk ends a nanosecond before the next starts: count to the second.
            held = (pd.Timestamp(first.chunk_end) - streak_start).total_seconds() + 1.0
            if held < needed:
                continue
            events.append(_event(config, rule, str(subject), first))
    return events


def _event(config: MonitorConfig, rule: AlertRule, subject: str, row: Any) -> AlertEvent:
    start, end = iso(row.chunk_start), iso(row.chunk_end)
    lower, upper = _bounds(rule, float(row.lower_threshold), float(row.upper_threshold))
    by_feature = rule.signal in FEATURE_SIGNALS
    method = None if rule.signal == "multivariate_drift" else row.method
    value = float(row.value)
    what = _describe(rule, rule.signal, subject, row.method)
    limits = " and ".join(
        text
        for text in (
            f"below {lower:.4g}" if lower is not None and value < lower else "",
            f"above {upper:.4g}" if upper is not None and value > upper else "",
        )
        if text
    )
    if not limits:
        limits = "flagged by NannyML"
    summary = (
        f"{config.model} ({config.environment}, {config.served_as}): {what} is {value:.4g}, "
        f"{limits}, in chunk {row.chunk_key} ({start} to {end})"
    )
    return AlertEvent(
        name=rule.name,
        severity=rule.severity,
        route=rule.route,
        model=config.model,
        environment=config.environment,
        version=config.version,
        signal=rule.signal,
        feature=subject if by_feature else None,
        metric=None if by_feature else subject,
        method=method,
        chunk_key=str(row.chunk_key),
        chunk_index=int(row.chunk_index),
        chunk_start=start,
        chunk_end=end,
        value=value,
        threshold_lower=lower,
        threshold_upper=upper,
        threshold_source="rule" if rule.below is not None or rule.above is not None else "nannyml",
        dedup_key=dedup_key(config.model, config.environment, rule.name, subject, f"{start}/{end}"),
        summary=summary,
    )
