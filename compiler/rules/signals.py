"""Metrics and signals: what a task measures, what monitoring computes, what alerts watch.

Kept apart from the serving and environment rules in `semantics`: these rules
follow NannyML's estimators and the monitor job's signals.
"""

from __future__ import annotations

from compiler.rules.findings import Finding
from compiler.spec.featureset import FeatureSetSpec
from compiler.spec.model import ModelSpec
from runtime.contract import vocabulary

PERFORMANCE_SIGNALS = frozenset({"estimated_performance", "realized_performance"})
SERVING_SIGNALS = frozenset(vocabulary.SERVING_SIGNALS)
SPEC = ("spec",)


def task_metrics(task: str) -> frozenset[str]:
    return frozenset(vocabulary.task_metrics(task))


def check_metrics(spec: ModelSpec) -> list[Finding]:
    allowed = task_metrics(spec.task)
    found: list[Finding] = []

    def need(path: tuple[str | int, ...], metric: str) -> None:
        if metric not in allowed:
            found.append(
                Finding(
                    path,
                    "KILN1311",
                    f"metric `{metric}` is not defined for {spec.task}",
                    f"use one of {', '.join(sorted(allowed))}",
                )
            )

    if spec.training is not None:
        for i, gate in enumerate(spec.training.gates):
            need((*SPEC, "training", "gates", i, "metric"), gate.metric)
    monitoring = spec.monitoring
    if monitoring is not None and monitoring.performance is not None:
        performance = monitoring.performance
        wanted = "dle" if spec.task == "regression" else "cbpe"
        if performance.estimator != wanted:
            found.append(
                Finding(
                    (*SPEC, "monitoring", "performance", "estimator"),
                    "KILN1409",
                    f"{performance.estimator} does not estimate {spec.task}",
                    f"use {wanted}",
                )
            )
        estimable = vocabulary.ESTIMABLE[performance.estimator]
        for i, metric in enumerate(performance.metrics):
            at = (*SPEC, "monitoring", "performance", "metrics", i)
            if performance.estimator == wanted and metric in allowed and metric not in estimable:
                found.append(
                    Finding(
                        at,
                        "KILN1311",
                        f"{performance.estimator} cannot estimate `{metric}`",
                        f"use one of {', '.join(sorted(estimable))}",
                    )
                )
            need(at, metric)
    return found


def check_alerts(
    spec: ModelSpec, features: FeatureSetSpec, routes: frozenset[str]
) -> list[Finding]:
    found: list[Finding] = []
    seen: set[str] = set()
    feature_names = {f.name for f in features.features}
    estimated = (
        set(spec.monitoring.performance.metrics)
        if spec.monitoring and spec.monitoring.performance
        else set()
    )
    for i, alert in enumerate(spec.alerts):
        at = (*SPEC, "alerts", i)
        when = alert.when
        if alert.name in seen:
            found.append(
                Finding((*at, "name"), "KILN1302", f"alert `{alert.name}` is declared twice")
            )
        seen.add(alert.name)
        if alert.route not in routes:
            found.append(
                Finding(
                    (*at, "route"),
                    "KILN1305",
                    f"alert route `{alert.route}` is not in the Project's alert_routes",
                    f"known routes: {', '.join(sorted(routes)) or 'none'}",
                )
            )
        if when.feature is not None and when.feature not in feature_names:
            found.append(
                Finding(
                    (*at, "when", "feature"),
                    "KILN1309",
                    f"`{when.feature}` is not a feature of {spec.features}",
                )
            )
        found.extend(_signal_problems(spec, features, at))
        if when.signal in PERFORMANCE_SIGNALS:
            if when.metric is None or (when.below is None and when.above is None):
                found.append(
                    Finding(
                        (*at, "when"),
                        "KILN1408",
                        f"an alert on {when.signal} needs `metric` and `below` or `above`",
                        key=True,
                    )
                )
            elif when.signal == "estimated_performance" and when.metric not in estimated:
                found.append(
                    Finding(
                        (*at, "when", "metric"),
                        "KILN1311",
                        f"`{when.metric}` is not estimated by monitoring.performance",
                        "add it to monitoring.performance.metrics",
                    )
                )
        elif when.signal in SERVING_SIGNALS and when.above is None:
            found.append(
                Finding(
                    (*at, "when"),
                    "KILN1408",
                    f"an alert on {when.signal} needs `above`",
                    key=True,
                )
            )
    return found


def computed_signals(spec: ModelSpec, features: FeatureSetSpec) -> set[str]:
    """The monitor signals the spec's monitoring block computes."""
    monitoring = spec.monitoring
    if monitoring is None:
        return set()
    drift, quality, performance = monitoring.drift, monitoring.data_quality, monitoring.performance
    declared = any(
        (f.range is not None and (f.range.min is not None or f.range.max is not None)) or f.values
        for f in features.features
    )
    computed = {
        "drift": bool(drift and drift.univariate),
        "multivariate_drift": bool(drift and drift.multivariate),
        "estimated_performance": performance is not None,
        "realized_performance": bool(performance and monitoring.columns.target),
        "missing_values": bool(quality and quality.missing_values),
        "unseen_values": bool(
            quality
            and quality.unseen_values
            and any(f.kind == "categorical" for f in features.features)
        ),
        "range": bool(quality and quality.ranges and declared),
    }
    return {signal for signal, on in computed.items() if on}


def _signal_problems(
    spec: ModelSpec, features: FeatureSetSpec, at: tuple[str | int, ...]
) -> list[Finding]:
    """An alert must watch something the monitor computes, and name only what fits it."""
    alert = spec.alerts[int(at[-1])]
    when = alert.when
    if when.signal in SERVING_SIGNALS:
        return []
    found: list[Finding] = []
    if when.signal not in computed_signals(spec, features):
        found.append(
            Finding(
                (*at, "when", "signal"),
                "KILN1415",
                f"alert `{alert.name}` watches {when.signal}, which monitoring does not compute",
                "enable it in the monitoring block (drift, performance or data_quality)",
            )
        )
    if when.signal in PERFORMANCE_SIGNALS and when.feature is not None:
        found.append(
            Finding(
                (*at, "when", "feature"), "KILN1408", "a performance alert cannot name a feature"
            )
        )
    if when.signal not in PERFORMANCE_SIGNALS and when.metric is not None:
        found.append(
            Finding(
                (*at, "when", "metric"), "KILN1408", f"a {when.signal} alert cannot name a metric"
            )
        )
    if when.signal == "multivariate_drift" and when.feature is not None:
        found.append(
            Finding(
                (*at, "when", "feature"),
                "KILN1408",
                "multivariate drift covers all features; remove `feature`",
            )
        )
    feature = next((f for f in features.features if f.name == when.feature), None)
    if feature is not None and when.signal == "unseen_values" and feature.kind != "categorical":
        found.append(
            Finding(
                (*at, "when", "feature"),
                "KILN1408",
                f"`{feature.name}` is continuous; unseen values are checked on "
                "categorical features",
            )
        )
    if (
        feature is not None
        and when.signal == "range"
        and feature.range is None
        and not feature.values
    ):
        found.append(
            Finding(
                (*at, "when", "feature"),
                "KILN1408",
                f"`{feature.name}` declares no range or values in its FeatureSet",
            )
        )
    return found
