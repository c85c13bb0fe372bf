"""The shared machinery of the monitor's calculators: their outcomes, the tidy table each
result becomes (see `TIDY_COLUMNS`), NannyML's thresholds, and the context they run in.

NannyML 0.13 swallows some failures: a drift method that raises inside a chunk is logged and
reported as NaN with `alert=False`; an all-missing column gives NaN "no alert"; a
single-chunk reference gives a threshold of 0 that alerts on every chunk. Every outcome is
therefore checked here, and an analysis value NaN is a failure with the reason spelled
out (except realised performance, where missing or one-class targets make a metric
undefined, which is recorded as such).
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# NannyML sends usage telemetry unless this is set before it is imported.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import numpy as np
import pandas as pd
from nannyml.chunk import Chunker
from nannyml.thresholds import ConstantThreshold, StandardDeviationThreshold
from nannyml.thresholds import Threshold as NmlThreshold

from runtime.contract.monitor_config import MonitorConfig, Threshold
from runtime.monitor.chunks import ChunkInfo, make_chunker

TIDY_COLUMNS = [
    "signal",  # drift, multivariate_drift, estimated_performance, ...
    "subject",  # feature (drift, data quality), metric (performance), method (multivariate)
    "method",  # jensen_shannon, chi2, cbpe, dle, realized, reconstruction_error, ...
    "period",  # reference | analysis
    "chunk_index",
    "chunk_key",
    "chunk_start",
    "chunk_end",
    "chunk_rows",
    "value",
    "lower_threshold",
    "upper_threshold",
    "alert",
    "sampling_error",
    "lower_confidence",
    "upper_confidence",
    "realized",
    "note",
]


@dataclass
class Outcome:
    """What one calculator produced, or why it did not."""

    name: str
    signal: str
    status: str = "ok"  # ok | failed | skipped
    seconds: float = 0.0
    plot_seconds: float = 0.0  # of `seconds`, spent drawing NannyML's figure
    table: pd.DataFrame | None = None
    figure: Any = None
    message: str | None = None
    detail: str = ""
    warnings: list[str] = field(default_factory=list)


class CalcFailure(Exception):
    """A calculator finished but its result cannot be trusted."""


# --- thresholds --------------------------------------------------------------------------


def nml_threshold(threshold: Threshold | None, two_sided: bool) -> NmlThreshold | None:
    if threshold is None:
        return None
    if threshold.std is not None:
        lower = threshold.std if two_sided else None
        return StandardDeviationThreshold(
            std_lower_multiplier=lower, std_upper_multiplier=threshold.std
        )
    bounds = threshold.constant
    assert bounds is not None
    return ConstantThreshold(lower=bounds.lower, upper=bounds.upper)


# --- running -----------------------------------------------------------------------------


@contextmanager
def captured(outcome: Outcome) -> Iterator[list[str]]:
    """Collect NannyML's log errors and warnings instead of letting them scroll past."""
    errors: list[str] = []

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            errors.append(record.getMessage())

    logger = logging.getLogger("nannyml")
    handler = _Handler(level=logging.ERROR)
    previous = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield errors
        seen: list[str] = []
        for w in caught:
            text = str(w.message).strip()
            if text and text not in seen and not issubclass(w.category, DeprecationWarning):
                seen.append(text)
        outcome.warnings = seen[:20]
    finally:
        logger.removeHandler(handler)
        logger.propagate = previous


def tidy(
    data: pd.DataFrame,
    signal: str,
    method: str | None = None,
    subjects: dict[str, str] | None = None,
) -> pd.DataFrame:
    """NannyML's wide result (2- or 3-level columns) as rows of TIDY_COLUMNS.

    3-level results (univariate drift) are (feature, method, field); 2-level ones are
    (subject, field) and take `method`. `subjects` renames NannyML's subject names.
    """
    three = data.columns.nlevels == 3
    prefix: tuple[str, ...] = ("chunk", "chunk") if three else ("chunk",)

    def chunk(name: str) -> pd.Series:
        return data[(*prefix, name)]

    start, end = chunk("start_index").astype("int64"), chunk("end_index").astype("int64")
    base = {
        "period": chunk("period").astype(str).to_numpy(),
        "chunk_index": chunk("chunk_index").astype("int64").to_numpy(),
        "chunk_key": chunk("key").astype(str).to_numpy(),
        "chunk_start": pd.to_datetime(chunk("start_date")).to_numpy(),
        "chunk_end": pd.to_datetime(chunk("end_date")).to_numpy(),
        "chunk_rows": (end - start + 1).to_numpy(),
    }
    groups: list[tuple[str, ...]] = []
    for column in data.columns:
        group = tuple(column[:-1])
        if group[0] != "chunk" and group not in groups:
            groups.append(group)
    parts = []
    for group in groups:
        fields = {c[-1] for c in data.columns if tuple(c[:-1]) == group}

        def get(name: str, group: tuple[str, ...] = group, fields: set[str] = fields) -> Any:
            if name not in fields:
                return np.nan
            return pd.to_numeric(data[(*group, name)], errors="coerce").to_numpy(dtype=float)

        subject = group[0]
        alert = data[(*group, "alert")] if "alert" in fields else None
        parts.append(
            pd.DataFrame(
                {
                    "signal": signal,
                    "subject": (subjects or {}).get(subject, subject),
                    "method": group[1] if three else method,
                    **base,
                    "value": get("value"),
                    "lower_threshold": get("lower_threshold"),
                    "upper_threshold": get("upper_threshold"),
                    "alert": [_flag(v) for v in alert] if alert is not None else None,
                    "sampling_error": get("sampling_error"),
                    "lower_confidence": get("lower_confidence_boundary"),
                    "upper_confidence": get("upper_confidence_boundary"),
                    "realized": get("realized"),
                    "note": None,
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)[TIDY_COLUMNS]
    return table.sort_values(
        ["subject", "method", "period", "chunk_index"], key=period_first, kind="stable"
    ).reset_index(drop=True)


def period_first(column: pd.Series) -> pd.Series:
    # reference chunks before analysis chunks, whatever the alphabet says
    if column.name == "period":
        return column.map({"reference": 0, "analysis": 1}).fillna(2)
    return column


def _flag(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def nan_failures(
    table: pd.DataFrame,
    name: str,
    frame: pd.DataFrame,
    ts: str,
    errors: list[str],
    by_feature: bool,
) -> None:
    """Raise CalcFailure naming the analysis values that are NaN, with their likely cause."""
    bad = table[(table["period"] == "analysis") & table["value"].isna()]
    if bad.empty:
        return
    reasons = []
    for row in bad.head(5).itertuples():
        where = f"chunk {row.chunk_key} ({row.chunk_rows} rows)"
        if by_feature:
            what = f"{row.method} of feature {row.subject!r}"
            values = chunk_rows(frame, ts, row.chunk_start, row.chunk_end)[row.subject]
            if values.isna().all():
                reasons.append(f"{what} is undefined in {where}: the feature has no values there")
                continue
        else:
            what = f"{row.method} {row.subject}"
        reasons.append(f"NannyML returned no {what} for {where}")
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    logged = f"; NannyML logged: {errors[0]}" if errors else ""
    raise CalcFailure(f"{'; '.join(reasons)}{more}{logged}")


def chunk_rows(frame: pd.DataFrame, ts: str, start: Any, end: Any) -> pd.DataFrame:
    times = frame[ts]
    return frame.loc[(times >= start) & (times <= end)]


# --- the calculators ---------------------------------------------------------------------


@dataclass
class Context:
    """What every calculator step reads."""

    config: MonitorConfig
    reference: pd.DataFrame
    analysis: pd.DataFrame
    reference_chunks: list[ChunkInfo]
    analysis_chunks: list[ChunkInfo]
    # Row positions of (reference, analysis) in the order NannyML chunks them (chunks.py).
    orders: tuple[np.ndarray, np.ndarray]

    @property
    def ts(self) -> str:
        return self.config.columns.timestamp

    def chunker(self) -> Chunker:
        return make_chunker(self.config)


def plot(outcome: Outcome, make: Callable[[], Any]) -> None:
    """Figures are for people: a figure that fails is noted, the numbers still stand."""
    started = time.perf_counter()
    try:
        outcome.figure = make()
    except Exception as exc:
        outcome.warnings.append(f"figure unavailable: {type(exc).__name__}: {exc}")
    outcome.plot_seconds = time.perf_counter() - started


def plot_unless_all_zero(outcome: Outcome, make: Callable[[], Any]) -> None:
    """Data-quality figures only when there is something to see: a grid of flat zero lines
    tells a reader nothing the report's table does not (and costs a second per figure)."""
    assert outcome.table is not None
    if (outcome.table["value"].fillna(0) == 0).all():
        outcome.detail += "; all zero, no figure"
        return
    plot(outcome, make)
