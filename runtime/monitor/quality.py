"""Data-quality calculators: missing values, values unseen in the reference, and values
outside the FeatureSet's declared ranges.
"""

from __future__ import annotations

import os
from typing import Any

# NannyML sends usage telemetry unless this is set before it is imported.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml as nml
import numpy as np
import pandas as pd

from runtime.contract.monitor_config import FeatureColumn
from runtime.monitor.chunks import ChunkInfo
from runtime.monitor.tidy import (
    TIDY_COLUMNS,
    Context,
    Outcome,
    nan_failures,
    period_first,
    plot_unless_all_zero,
    tidy,
)


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
    nan_failures(outcome.table, outcome.name, ctx.analysis, ctx.ts, errors, by_feature=False)
    outcome.detail = detail
    plot_unless_all_zero(outcome, result.plot)  # may add to the detail


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
    for period, frame, chunks, order in (
        ("reference", ctx.reference, ctx.reference_chunks, ctx.orders[0]),
        ("analysis", ctx.analysis, ctx.analysis_chunks, ctx.orders[1]),
    ):
        # Counts per chunk from running sums over the rows in NannyML's order, in which
        # each chunk is a contiguous run (chunks.py): no frame is cut into chunks here.
        first = np.array([c.first for c in chunks])
        last = first + np.array([c.rows for c in chunks])
        for feature in declared:
            values = frame[feature.name]
            known = values.notna().to_numpy()
            if feature.values is not None:
                outside = known & ~values.isin(feature.values).to_numpy()
            else:
                assert feature.range is not None
                numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
                outside = np.zeros(len(values), dtype=bool)
                if feature.range.min is not None:
                    outside |= numbers < feature.range.min
                if feature.range.max is not None:
                    outside |= numbers > feature.range.max
            outside, known = outside[order], known[order]
            shares = _shares(_per_chunk(outside, first, last), _per_chunk(known, first, last))
            parts.append(_range_rows(feature, period, chunks, shares))
    table = pd.concat(parts, ignore_index=True).reindex(columns=TIDY_COLUMNS)
    table["note"] = None
    outcome.table = table.sort_values(
        ["subject", "method", "period", "chunk_index"], key=period_first, kind="stable"
    ).reset_index(drop=True)
    outcome.detail = f"FeatureSet ranges and values of {len(declared)} features"
    plot_unless_all_zero(outcome, lambda: _range_figure(outcome.table))


def _per_chunk(flags: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    running = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
    return running[last] - running[first]


def _shares(outside: np.ndarray, known: np.ndarray) -> list[float]:
    return [float(o / k) if k else 0.0 for o, k in zip(outside, known, strict=True)]


def _range_rows(
    feature: FeatureColumn, period: str, chunks: list[ChunkInfo], shares: list[float]
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "signal": "range",
            "subject": feature.name,
            "method": "declared_values" if feature.values else "declared_range",
            "period": period,
            "chunk_index": [c.index for c in chunks],
            "chunk_key": [c.key for c in chunks],
            "chunk_start": [c.start for c in chunks],
            "chunk_end": [c.end for c in chunks],
            "chunk_rows": [c.rows for c in chunks],
            "value": shares,
            "lower_threshold": np.nan,
            "upper_threshold": 0.0,
            "alert": [share > 0 for share in shares],
        }
    )


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
