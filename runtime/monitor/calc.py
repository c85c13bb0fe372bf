"""Runs the monitor's NannyML calculators, each into an `Outcome`: a failure is recorded
and the others still run. The calculators are in `drift`, `performance` and `quality`;
what they share (outcomes, tidy tables, thresholds, the context) in `tidy`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from runtime.monitor.drift import multivariate_drift, univariate_drift
from runtime.monitor.performance import estimated_performance, realized_performance
from runtime.monitor.quality import declared_range, missing_values, unseen_values
from runtime.monitor.tidy import CalcFailure, Context, Outcome, captured

# NannyML sends usage telemetry unless this is set before it is imported.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"


# (name, signal, calculator), in the order they run and report.
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
            with captured(outcome) as errors:
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
