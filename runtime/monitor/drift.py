"""Drift calculators: univariate drift per feature, and multivariate drift (data
reconstruction, or a domain classifier on a bounded subsample).
"""

from __future__ import annotations

import os
import warnings

# NannyML sends usage telemetry unless this is set before it is imported.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml as nml
import numpy as np
import pandas as pd
from nannyml.chunk import Chunk, Chunker
from nannyml.thresholds import Threshold as NmlThreshold

from runtime.monitor.chunks import ChunkInfo
from runtime.monitor.figures import drift_figure
from runtime.monitor.tidy import Context, Outcome, nan_failures, nml_threshold, plot, tidy

DEFAULT_DOMAIN_CLASSIFIER_ROWS = 100_000
SEED = 0


def univariate_drift(ctx: Context, outcome: Outcome, errors: list[str]) -> None:
    drift = ctx.config.drift
    assert drift is not None and drift.univariate is not None
    spec, cols = drift.univariate, ctx.config.columns
    threshold = nml_threshold(spec.threshold, two_sided=False)
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
    nan_failures(outcome.table, outcome.name, ctx.analysis, ctx.ts, errors, by_feature=True)
    outcome.detail = (
        f"{len(cols.continuous)} continuous x {len(spec.continuous)}, "
        f"{len(cols.categorical)} categorical x {len(spec.categorical)} method(s)"
    )
    table = outcome.table
    plot(outcome, lambda: drift_figure(table))


def multivariate_drift(ctx: Context, outcome: Outcome, errors: list[str]) -> None:
    drift = ctx.config.drift
    assert drift is not None and drift.multivariate is not None
    spec, cols = drift.multivariate, ctx.config.columns
    threshold = nml_threshold(spec.threshold, two_sided=True)
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
    nan_failures(outcome.table, outcome.name, ctx.analysis, ctx.ts, errors, by_feature=False)
    outcome.detail = f"data reconstruction (PCA) over {len(cols.feature_names)} features"
    plot(outcome, result.plot)


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
    nan_failures(table, outcome.name, ctx.analysis, ctx.ts, errors, by_feature=False)
    outcome.detail = (
        f"domain classifier on {len(reference)} + {len(analysis)} rows (budget {budget})"
    )
    plot(outcome, result.plot)
