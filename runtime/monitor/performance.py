"""Performance calculators: estimated before labels arrive (CBPE, DLE) and realised after."""

from __future__ import annotations

import math
import os
from typing import Any

# NannyML sends usage telemetry unless this is set before it is imported.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml as nml
import pandas as pd

from runtime.contract.monitor_config import MonitorConfig
from runtime.monitor.tidy import Context, Outcome, chunk_rows, nan_failures, plot, tidy


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
    nan_failures(outcome.table, outcome.name, ctx.analysis, ctx.ts, errors, by_feature=False)
    outcome.detail = f"{perf.estimator}: {', '.join(perf.metrics)}"
    plot(outcome, result.plot)


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
            targets = chunk_rows(ctx.analysis, ctx.ts, row.chunk_start, row.chunk_end)[
                cols.target
            ].dropna()
            if targets.empty:
                note = "no targets in this chunk yet"
            elif ctx.config.classification and targets.nunique() < 2:
                note = f"targets of one class only ({targets.iloc[0]!r}): undefined"
        notes.append(note)
    table["note"] = notes
    outcome.table = table
    nan_failures(
        table[table["note"].isna()], outcome.name, ctx.analysis, ctx.ts, errors, by_feature=False
    )
    labelled = int(ctx.analysis[cols.target].notna().sum())
    outcome.detail = f"{', '.join(perf.metrics)} on {labelled} labelled rows"
    plot(outcome, result.plot)
