"""Data-quality calculators: missing values, values unseen in the reference, and values
outside the FeatureSet's declared ranges.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

# NannyML sends usage telemetry unless this is set before it is imported.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml as nml
import numpy as np
import pandas as pd

from runtime.monitor.chunks import as_timestamp
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
                        "chunk_start": [as_timestamp(c.start_datetime) for c in chunks],
                        "chunk_end": [as_timestamp(c.end_datetime) for c in chunks],
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
        ["subject", "method", "period", "chunk_index"], key=period_first, kind="stable"
    ).reset_index(drop=True)
    outcome.detail = f"FeatureSet ranges and values of {len(declared)} features"
    plot_unless_all_zero(outcome, lambda: _range_figure(outcome.table))


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
