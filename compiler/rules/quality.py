"""Rules for the quality thresholds of a rollout analysis (rollout.analysis.max_prediction_shift,
shift_distance, min_agreement, max_mean_abs_difference).

The comparison reads the captured predictions of both versions (docs/serving.md, quality
gates), whose columns are the monitor's: without a monitoring section there is no column
to compare. Agreement and mean absolute difference join the two versions' answers to the
same request, which only a shadow rollout has: every other strategy sends a request to one
version or the other.
"""

from __future__ import annotations

from compiler.rules.findings import Finding
from compiler.spec.model import ModelSpec
from compiler.spec.project import Environment
from runtime.contract.quality import distances_for

ANALYSIS = ("spec", "rollout", "analysis")
SHADOW_ONLY = ("min_agreement", "max_mean_abs_difference")
THRESHOLDS = ("max_prediction_shift", *SHADOW_ONLY)


def check_quality(spec: ModelSpec) -> list[Finding]:
    analysis = spec.rollout.analysis
    if analysis is None:
        return []
    written = [name for name in THRESHOLDS if getattr(analysis, name) is not None]
    found = _shadow_only(spec)
    found += _distance(spec)
    if written and spec.monitoring is None:
        found.append(
            Finding(
                (*ANALYSIS, written[0]),
                "KILN1432",
                f"`{written[0]}` compares captured predictions, whose columns "
                "monitoring.columns names, but the model has no monitoring section",
                "add monitoring (with columns: timestamp, prediction, score), or remove "
                "the quality thresholds",
                key=True,
            )
        )
    if analysis.min_agreement is not None and spec.task == "regression":
        found.append(
            Finding(
                (*ANALYSIS, "min_agreement"),
                "KILN1433",
                "`min_agreement` counts equal labels, and a regression model predicts values",
                "use max_mean_abs_difference for a regression model",
                key=True,
            )
        )
    return found


def _shadow_only(spec: ModelSpec) -> list[Finding]:
    analysis, strategy = spec.rollout.analysis, spec.rollout.strategy
    assert analysis is not None
    if strategy == "shadow":
        return []
    return [
        Finding(
            (*ANALYSIS, name),
            "KILN1430",
            f"`{name}` compares both versions' answers to the same mirrored request, which "
            f"only the shadow strategy has; {strategy} sends each request to one version",
            "use max_prediction_shift for this strategy, or set rollout.strategy: shadow",
            key=True,
        )
        for name in SHADOW_ONLY
        if getattr(analysis, name) is not None
    ]


def _distance(spec: ModelSpec) -> list[Finding]:
    analysis = spec.rollout.analysis
    assert analysis is not None
    fitting = distances_for(spec.task)
    if analysis.shift_distance is None or analysis.shift_distance in fitting:
        return []
    return [
        Finding(
            (*ANALYSIS, "shift_distance"),
            "KILN1431",
            f"shift_distance {analysis.shift_distance} does not fit a {spec.task} model",
            f"use {' or '.join(fitting)}",
        )
    ]


def check_quality_environment(spec: ModelSpec, environment: Environment) -> list[Finding]:
    """The comparison step hands its numbers to the AnalysisTemplate through the
    environment's Pushgateway: without one every quality measurement stays inconclusive."""
    analysis = spec.rollout.analysis
    if analysis is None or environment.pushgateway_url is not None:
        return []
    written = [name for name in THRESHOLDS if getattr(analysis, name) is not None]
    if not written:
        return []
    return [
        Finding(
            (*ANALYSIS, written[0]),
            "KILN1434",
            f"`{written[0]}` is judged from what the comparison Job pushes to the "
            f"Pushgateway, and environment {environment.name} has none (pushgateway_url: "
            "null), so the gate could never decide",
            f"set pushgateway_url for environment {environment.name}, or remove the "
            "quality thresholds in its overlay",
            key=True,
        )
    ]
