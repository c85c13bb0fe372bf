"""The NannyML calculators of the monitor, and the checks NannyML does not make.

NannyML 0.13 swallows some failures: a drift method that raises inside a chunk is logged and
reported as NaN with `alert=False`; an all-missing column gives NaN "no alert"; a
single-chunk reference gives a threshold of 0 that alerts on every chunk. Every outcome is
therefore checked here, and an analysis value NaN is a failure with the reason spelled
out (except realised performance, where missing or one-class targets make a metric
undefined, which is recorded as such).

Results are turned into one tidy table per calculator (see `TIDY_COLUMNS`).
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

import nannyml as nml
import numpy as np
import pandas as pd
from nannyml.chunk import Chunk, Chunker
from nannyml.thresholds import ConstantThreshold, StandardDeviationThreshold
from nannyml.thresholds import Threshold as NmlThreshold

from runtime.contract.monitor_config import MonitorConfig, Threshold
from runtime.monitor.data import MonitorError

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
DEFAULT_DOMAIN_CLASSIFIER_ROWS = 100_000
SEED = 0


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


# --- chunks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkInfo:
    index: int
    key: str
    start: pd.Timestamp
    end: pd.Timestamp
    rows: int


def make_chunker(config: MonitorConfig) -> Chunker:
    ts, chunking = config.columns.timestamp, config.chunking
    if chunking.size is not None:
        return nml.SizeBasedChunker(chunk_size=chunking.size, timestamp_column_name=ts)
    if chunking.count is not None:
        return nml.CountBasedChunker(chunk_number=chunking.count, timestamp_column_name=ts)
    return nml.PeriodBasedChunker(offset=chunking.period, timestamp_column_name=ts)


def describe_chunking(config: MonitorConfig) -> str:
    c = config.chunking
    return f"size {c.size}" if c.size else f"count {c.count}" if c.count else f"period {c.period}"


def split_chunks(config: MonitorConfig, frame: pd.DataFrame, role: str) -> list[ChunkInfo]:
    """The chunks NannyML will make of `frame` (it chunks on the timestamp only)."""
    ts = config.columns.timestamp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            chunks = make_chunker(config).split(frame[[ts]])
        except nml.ChunkerException as exc:
            raise MonitorError(
                "chunking",
                f"{role} data ({len(frame)} rows) cannot be chunked by "
                f"{describe_chunking(config)}: {exc}",
            ) from exc
    infos = [
        ChunkInfo(c.chunk_index, str(c.key), _ts(c.start_datetime), _ts(c.end_datetime), len(c))
        for c in chunks
    ]
    for info in infos:
        if info.rows == 0:
            raise MonitorError(
                "chunking", f"{role} chunk {info.key} is empty ({describe_chunking(config)})"
            )
    return infos


def _ts(value: Any) -> pd.Timestamp:
    return pd.Timestamp(value)


def check_reference_chunks(config: MonitorConfig, chunks: list[ChunkInfo]) -> None:
    if len(chunks) < 2:
        raise MonitorError(
            "chunking",
            f"the reference data makes {len(chunks)} chunk with chunking by "
            f"{describe_chunking(config)}; alert thresholds come from the spread of the "
            "reference chunks and need at least 2 (NannyML would set a threshold of 0 and "
            "alert on every chunk): use smaller chunks or more reference data",
        )


# --- thresholds --------------------------------------------------------------------------


def _threshold(threshold: Threshold | None, two_sided: bool) -> NmlThreshold | None:
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
def _captured(outcome: Outcome) -> Iterator[list[str]]:
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
        ["subject", "method", "period", "chunk_index"], key=_period_first, kind="stable"
    ).reset_index(drop=True)


def _period_first(column: pd.Series) -> pd.Series:
    # reference chunks before analysis chunks, whatever the alphabet says
    if column.name == "period":
        return column.map({"reference": 0, "analysis": 1}).fillna(2)
    return column


def _flag(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def _nan_failures(
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
            values = _chunk_rows(frame, ts, row.chunk_start, row.chunk_end)[row.subject]
            if values.isna().all():
                reasons.append(f"{what} is undefined in {where}: the feature has no values there")
                continue
        else:
            what = f"{row.method} {row.subject}"
        reasons.append(f"NannyML returned no {what} for {where}")
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    logged = f"; NannyML logged: {errors[0]}" if errors else ""
    raise CalcFailure(f"{'; '.join(reasons)}{more}{logged}")


def _chunk_rows(frame: pd.DataFrame, ts: str, start: Any, end: Any) -> pd.DataFrame:
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

    @property
    def ts(self) -> str:
        return self.config.columns.timestamp

    def chunker(self) -> Chunker:
        return make_chunker(self.config)


def _plot(outcome: Outcome, make: Callable[[], Any]) -> None:
    """Figures are for people: a figure that fails is noted, the numbers still stand."""
    started = time.perf_counter()
    try:
        outcome.figure = make()
    except Exception as exc:
        outcome.warnings.append(f"figure unavailable: {type(exc).__name__}: {exc}")
    outcome.plot_seconds = time.perf_counter() - started


def _plot_unless_all_zero(outcome: Outcome, make: Callable[[], Any]) -> None:
    """Data-quality figures only when there is something to see: a grid of flat zero lines
    tells a reader nothing the report's table does not (and costs a second per figure)."""
    assert outcome.table is not None
    if (outcome.table["value"].fillna(0) == 0).all():
        outcome.detail += "; all zero, no figure"
        return
    _plot(outcome, make)


def univariate_drift(ctx: Context, outcome: Outcome, errors: list[str]) -> None:
    drift = ctx.config.drift
    assert drift is not None and drift.univariate is not None
    spec, cols = drift.univariate, ctx.config.columns
    threshold = _threshold(spec.threshold, two_sided=False)
    methods = sorted({*spec.continuous, *spec.categorical} - {"chi2"})  # chi2 is a p-value test
    calc = nml.UnivariateDriftCalculator(
        column_names=cols.feature_names,
        treat_as_numerical=cols.continuous,
        treat_as_categorical=cols.categorical,
        timestamp_column_name=ctx.ts,
        continuous_methods=list(spec.continuous),
        categorical_methods=list(spec.categorical),
        chunker=ctx.chunker(),
        thresholds={m: threshold for m in methods} if threshold else None,
    )
    result = calc.fit(ctx.reference).calculate(ctx.analysis)
    outcome.table = tidy(result.data, "drift")
    _nan_failures(outcome.table, outcome.name, ctx.analysis, ctx.ts, errors, by_feature=True)
    outcome.detail = (
        f"{len(cols.continuous)} continuous x {len(spec.continuous)}, "
        f"{len(cols.categorical)} categorical x {len(spec.categorical)} method(s)"
    )
    _plot(outcome, lambda: result.plot(kind="drift"))


def multivariate_drift(ctx: Context, outcome: Outcome, errors: list[str]) -> None:
    drift = ctx.config.drift
    assert drift is not None and drift.multivariate is not None
    spec, cols = drift.multivariate, ctx.config.columns
    threshold = _threshold(spec.threshold, two_sided=True)
    if spec.method == "domain_classifier":
        _domain_classifier(ctx, outcome, errors, threshold)
        return
    extra = {"threshold": threshold} if threshold else {}
    calc = nml.DataReconstructionDriftCalculator(
        column_names=cols.feature_names,
        timestamp_column_name=ctx.ts,
        chunker=ctx.chunker(),
        **extra,
    )
    result = calc.fit(ctx.reference).calculate(ctx.analysis)
    outcome.table = tidy(result.data, "multivariate_drift", method="reconstruction_error")
    _nan_failures(outcome.table, outcome.name, ctx.analysis, ctx.ts, errors, by_feature=False)
    outcome.detail = f"data reconstruction (PCA) over {len(cols.feature_names)} features"
    _plot(outcome, result.plot)


class _AssignedChunker(Chunker):  # type: ignore[misc]  # NannyML is untyped
    """Chunks by a precomputed column, so that a subsample keeps the full data's chunks."""

    COLUMN = "__kiln_chunk"

    def __init__(self, timestamp: str, chunks: list[ChunkInfo]) -> None:
        super().__init__(timestamp)
        self.chunks = chunks

    def _split(self, data: pd.DataFrame) -> list[Chunk]:
        out = []
        for code, part in data.groupby(self.COLUMN, sort=True):
            info = self.chunks[int(code)]
            out.append(Chunk(info.key, part, info.start, info.end))
        return out


def _assign(ctx: Context, frame: pd.DataFrame, offset: int) -> pd.DataFrame:
    codes = np.empty(len(frame), dtype="int64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, chunk in enumerate(ctx.chunker().split(frame[[ctx.ts]])):
            codes[chunk.data.index.to_numpy()] = offset + i
    return frame.assign(**{_AssignedChunker.COLUMN: codes})


def _subsample(frame: pd.DataFrame, budget: int) -> pd.DataFrame:
    if len(frame) <= budget:
        return frame
    fraction = budget / len(frame)
    sample = frame.groupby(_AssignedChunker.COLUMN, group_keys=False).sample(
        frac=fraction, random_state=SEED
    )
    return sample.sort_index()


def _domain_classifier(
    ctx: Context, outcome: Outcome, errors: list[str], threshold: NmlThreshold | None
) -> None:
    drift = ctx.config.drift
    assert drift is not None and drift.multivariate is not None
    cols = ctx.config.columns
    budget = drift.multivariate.max_rows or DEFAULT_DOMAIN_CLASSIFIER_ROWS
    infos = ctx.reference_chunks + ctx.analysis_chunks
    reference = _subsample(_assign(ctx, ctx.reference, 0), budget)
    analysis = _subsample(_assign(ctx, ctx.analysis, len(ctx.reference_chunks)), budget)
    extra = {"threshold": threshold} if threshold else {}
    calc = nml.DomainClassifierCalculator(
        feature_column_names=cols.feature_names,
        treat_as_categorical=cols.categorical,
        timestamp_column_name=ctx.ts,
        chunker=_AssignedChunker(ctx.ts, infos),
        **extra,
    )
    result = calc.fit(reference).calculate(analysis)
    table = tidy(
        result.data,
        "multivariate_drift",
        method="domain_classifier",
        subjects={"domain_classifier_auroc": "domain_classifier"},
    )
    # chunk sizes and indexes are those of the full data, not of the sample
    full = {
        (p, c.key): c
        for p, cs in (("reference", ctx.reference_chunks), ("analysis", ctx.analysis_chunks))
        for c in cs
    }
    table["chunk_rows"] = [
        full[(p, k)].rows for p, k in zip(table.period, table.chunk_key, strict=True)
    ]
    table["chunk_index"] = [
        full[(p, k)].index for p, k in zip(table.period, table.chunk_key, strict=True)
    ]
    table["note"] = f"sampled {len(reference)} reference and {len(analysis)} analysis rows"
    outcome.table = table
    _nan_failures(table, outcome.name, ctx.analysis, ctx.ts, errors, by_feature=False)
    outcome.detail = (
        f"domain classifier on {len(reference)} + {len(analysis)} rows (budget {budget})"
    )
    _plot(outcome, result.plot)


def _problem_type(config: MonitorConfig) -> str:
    return {
        "binary_classification": "classification_binary",
        "multiclass_classification": "classification_multiclass",
        "regression": "regression",
    }[config.task]


def _proba(config: MonitorConfig, frame: pd.DataFrame) -> str | dict[Any, str] | None:
    """Score column(s); multiclass keys typed like the predicted labels."""
    score = config.columns.score
    if not isinstance(score, dict):
        return score
    labels = {str(v): v for v in pd.unique(frame[config.columns.prediction])}
    return {labels.get(k, k): column for k, column in sorted(score.items())}


def estimated_performance(ctx: Context, outcome: Outcome, errors: list[str]) -> None:
    perf, cols = ctx.config.performance, ctx.config.columns
    assert perf is not None and cols.target is not None
    if perf.estimator == "cbpe":
        calc: Any = nml.CBPE(
            metrics=list(perf.metrics),
            y_pred_proba=_proba(ctx.config, ctx.reference),
            y_pred=cols.prediction,
            y_true=cols.target,
            problem_type=_problem_type(ctx.config),
            timestamp_column_name=ctx.ts,
            chunker=ctx.chunker(),
        )
        result = calc.fit(ctx.reference).estimate(ctx.analysis)
    else:
        # NannyML 0.13's DLE breaks on pandas 3's inferred string columns (it reshapes an
        # Arrow-backed array); inference off inside the call keeps its arrays numpy.
        with pd.option_context("future.infer_string", False):
            calc = nml.DLE(
                feature_column_names=cols.feature_names,
                y_pred=cols.prediction,
                y_true=cols.target,
                metrics=list(perf.metrics),
                timestamp_column_name=ctx.ts,
                chunker=ctx.chunker(),
                hyperparameters={"verbosity": -1},  # LightGBM's defaults, without its chatter
            )
            result = calc.fit(ctx.reference).estimate(ctx.analysis)
    outcome.table = tidy(result.data, "estimated_performance", method=perf.estimator)
    _nan_failures(outcome.table, outcome.name, ctx.analysis, ctx.ts, errors, by_feature=False)
    outcome.detail = f"{perf.estimator}: {', '.join(perf.metrics)}"
    _plot(outcome, result.plot)


def realized_performance(ctx: Context, outcome: Outcome, errors: list[str]) -> None:
    perf, cols = ctx.config.performance, ctx.config.columns
    assert perf is not None and cols.target is not None
    calc = nml.PerformanceCalculator(
        metrics=list(perf.metrics),
        y_true=cols.target,
        y_pred=cols.prediction,
        y_pred_proba=_proba(ctx.config, ctx.reference) if ctx.config.classification else None,
        problem_type=_problem_type(ctx.config),
        timestamp_column_name=ctx.ts,
        chunker=ctx.chunker(),
    )
    result = calc.fit(ctx.reference).calculate(ctx.analysis)
    table = tidy(result.data, "realized_performance", method="realized")
    # Targets arrive late: a metric is undefined, not failed, where a chunk has no targets
    # yet or (classification) targets of one class only.
    notes = []
    for row in table.itertuples():
        note = None
        if row.period == "analysis" and math.isnan(row.value):
            targets = _chunk_rows(ctx.analysis, ctx.ts, row.chunk_start, row.chunk_end)[
                cols.target
            ].dropna()
            if targets.empty:
                note = "no targets in this chunk yet"
            elif ctx.config.classification and targets.nunique() < 2:
                note = f"targets of one class only ({targets.iloc[0]!r}): undefined"
        notes.append(note)
    table["note"] = notes
    outcome.table = table
    _nan_failures(
        table[table["note"].isna()], outcome.name, ctx.analysis, ctx.ts, errors, by_feature=False
    )
    labelled = int(ctx.analysis[cols.target].notna().sum())
    outcome.detail = f"{', '.join(perf.metrics)} on {labelled} labelled rows"
    _plot(outcome, result.plot)


def _share_of_rows(
    ctx: Context,
    outcome: Outcome,
    errors: list[str],
    calculator: Any,
    columns: list[str],
    signal: str,
    method: str,
    detail: str,
) -> None:
    """A NannyML data-quality calculator that reports a share of rows per column."""
    calc = calculator(column_names=columns, timestamp_column_name=ctx.ts, chunker=ctx.chunker())
    result = calc.fit(ctx.reference).calculate(ctx.analysis)
    outcome.table = tidy(result.data, signal, method=method)
    _nan_failures(outcome.table, outcome.name, ctx.analysis, ctx.ts, errors, by_feature=False)
    outcome.detail = detail
    _plot_unless_all_zero(outcome, result.plot)  # may add to the detail


def missing_values(ctx: Context, outcome: Outcome, errors: list[str]) -> None:
    features = ctx.config.columns.feature_names
    detail = f"share of missing values in {len(features)} features"
    calculator = nml.MissingValuesCalculator
    _share_of_rows(
        ctx, outcome, errors, calculator, features, "missing_values", "missing_share", detail
    )


def unseen_values(ctx: Context, outcome: Outcome, errors: list[str]) -> None:
    categorical = ctx.config.columns.categorical
    detail = f"values unseen in the reference, {len(categorical)} features"
    calculator = nml.UnseenValuesCalculator
    _share_of_rows(
        ctx, outcome, errors, calculator, categorical, "unseen_values", "unseen_share", detail
    )


def declared_range(ctx: Context, outcome: Outcome, errors: list[str]) -> None:
    """Share of values outside what the FeatureSet declares: NannyML's range calculator
    only knows the reference's min and max, so this check is Kiln's own."""
    cols = ctx.config.columns
    declared = [
        f
        for f in cols.features
        if (f.range and (f.range.min is not None or f.range.max is not None)) or f.values
    ]
    parts = []
    for period, frame in (("reference", ctx.reference), ("analysis", ctx.analysis)):
        # outside/known flags for every feature at once, summed per chunk
        flags = {ctx.ts: frame[ctx.ts]}
        for i, feature in enumerate(declared):
            values = frame[feature.name]
            known = values.notna()
            if feature.values is not None:
                outside = known & ~values.isin(feature.values)
            else:
                assert feature.range is not None
                numbers = pd.to_numeric(values, errors="coerce")
                outside = pd.Series(False, index=values.index)
                if feature.range.min is not None:
                    outside |= numbers < feature.range.min
                if feature.range.max is not None:
                    outside |= numbers > feature.range.max
            flags[f"o{i}"], flags[f"k{i}"] = outside, known
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chunks = ctx.chunker().split(pd.DataFrame(flags))
        sums = [c.data.drop(columns=ctx.ts).sum() for c in chunks]
        for i, feature in enumerate(declared):
            shares = [float(t[f"o{i}"] / t[f"k{i}"]) if t[f"k{i}"] else 0.0 for t in sums]
            parts.append(
                pd.DataFrame(
                    {
                        "signal": "range",
                        "subject": feature.name,
                        "method": "declared_values" if feature.values else "declared_range",
                        "period": period,
                        "chunk_index": [c.chunk_index for c in chunks],
                        "chunk_key": [str(c.key) for c in chunks],
                        "chunk_start": [_ts(c.start_datetime) for c in chunks],
                        "chunk_end": [_ts(c.end_datetime) for c in chunks],
                        "chunk_rows": [len(c) for c in chunks],
                        "value": shares,
                        "lower_threshold": np.nan,
                        "upper_threshold": 0.0,
                        "alert": [share > 0 for share in shares],
                    }
                )
            )
    table = pd.concat(parts, ignore_index=True).reindex(columns=TIDY_COLUMNS)
    table["note"] = None
    outcome.table = table.sort_values(
        ["subject", "method", "period", "chunk_index"], key=_period_first, kind="stable"
    ).reset_index(drop=True)
    outcome.detail = f"FeatureSet ranges and values of {len(declared)} features"
    _plot_unless_all_zero(outcome, lambda: _range_figure(outcome.table))


def _range_figure(table: pd.DataFrame) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    for subject, part in table.groupby("subject", sort=True):
        label = part["chunk_key"].where(part["period"] == "analysis", "ref " + part["chunk_key"])
        figure.add_trace(go.Scatter(x=label, y=part["value"], mode="lines+markers", name=subject))
    figure.update_layout(
        title="Share of values outside the FeatureSet's declared ranges and values",
        yaxis_title="share of rows",
        xaxis_title="chunk",
        height=420,
    )
    return figure


CALCULATORS: list[tuple[str, str, Callable[[Context, Outcome, list[str]], None]]] = [
    ("univariate_drift", "drift", univariate_drift),
    ("multivariate_drift", "multivariate_drift", multivariate_drift),
    ("estimated_performance", "estimated_performance", estimated_performance),
    ("realized_performance", "realized_performance", realized_performance),
    ("missing_values", "missing_values", missing_values),
    ("unseen_values", "unseen_values", unseen_values),
    ("range", "range", declared_range),
]


def run_calculators(ctx: Context, progress: Callable[[Outcome], None]) -> list[Outcome]:
    """Run every configured calculator; a failure is recorded and the others still run."""
    outcomes = []
    for name, signal, step in CALCULATORS:
        if not ctx.config.computes(signal):
            continue
        outcome = Outcome(name, signal)
        target = ctx.config.columns.target
        if signal == "realized_performance" and (
            target not in ctx.analysis.columns or ctx.analysis[target].notna().sum() == 0
        ):
            outcome.status = "skipped"
            outcome.message = f"the analysis data has no values of target {target!r} yet"
            outcomes.append(outcome)
            progress(outcome)
            continue
        started = time.perf_counter()
        try:
            with _captured(outcome) as errors:
                step(ctx, outcome, errors)
        except CalcFailure as exc:
            outcome.status, outcome.message = "failed", str(exc)
        except Exception as exc:  # NannyML's own exceptions, with its message
            outcome.status = "failed"
            outcome.message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        outcome.seconds = time.perf_counter() - started
        if outcome.status == "failed":
            outcome.table = None
        outcomes.append(outcome)
        progress(outcome)
    return outcomes
