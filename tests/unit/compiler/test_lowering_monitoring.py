"""Lowering monitoring, alerts and routes: durations in seconds, mappings as sorted pairs."""

from __future__ import annotations

from compiler.ir.monitoring import (
    ChunkingIR,
    ConditionIR,
    DatasetIR,
    SecretRefIR,
    ThresholdIR,
)
from compiler.ir.serving import DurationIR
from compiler.ir.training import ScheduleIR
from compiler.lowering import lower_alert, lower_monitoring, lower_route
from compiler.spec.model import Alert, Monitoring
from compiler.spec.project import AlertRoute

MONITORING = Monitoring.model_validate(
    {
        "schedule": {"cron": "0 * * * *"},
        "reference": {"uri": "ref.parquet"},
        "analysis": {"uri": "live/", "format": "csv", "lookback": "7d"},
        "columns": {"timestamp": "ts", "prediction": "tier", "score": {"b": "p_b", "a": "p_a"}},
        "drift": {"univariate": {"threshold": {"std": 3}}},
        "performance": {"estimator": "cbpe", "metrics": ["roc_auc"]},
    }
)


def test_no_monitoring_stays_none() -> None:
    assert lower_monitoring(None) is None


def test_monitoring_defaults_are_applied_and_durations_lowered() -> None:
    monitoring = lower_monitoring(MONITORING)
    assert monitoring is not None
    assert monitoring.schedule == ScheduleIR("0 * * * *", "UTC")
    assert monitoring.reference == DatasetIR("ref.parquet", None, None)
    assert monitoring.analysis.lookback == DurationIR(604800, "7d")
    assert monitoring.chunking == ChunkingIR(None, 5000, None)
    assert monitoring.data_quality is None
    hash(monitoring)  # frozen all the way down: no list or dict is left in it


def test_monitoring_lists_become_tuples() -> None:
    monitoring = lower_monitoring(MONITORING)
    assert monitoring is not None
    assert monitoring.columns.score == (("b", "p_b"), ("a", "p_a"))  # the spec's order
    assert monitoring.drift is not None
    univariate = monitoring.drift.univariate
    assert univariate is not None
    assert (univariate.continuous, univariate.categorical) == (("jensen_shannon",), ("chi2",))
    assert univariate.threshold == ThresholdIR(3, None)
    assert monitoring.performance is not None
    assert monitoring.performance.metrics == ("roc_auc",)


def test_an_alert_condition_holds_its_duration() -> None:
    alert = lower_alert(
        Alert.model_validate(
            {
                "name": "slow",
                "when": {"signal": "latency_p99_ms", "above": 200, "for": "10m"},
                "severity": "warning",
                "route": "oncall",
            }
        )
    )
    assert alert.when == ConditionIR(
        "latency_p99_ms", None, None, None, 200, DurationIR(600, "10m")
    )
    assert (alert.severity, alert.route) == ("warning", "oncall")
    hash(alert)


def test_a_webhook_route_holds_its_headers_as_sorted_pairs() -> None:
    route = lower_route(
        AlertRoute.model_validate(
            {
                "name": "hooks",
                "webhook": {
                    "url": "https://hooks.example/kiln",
                    "headers": {
                        "X-Token": {"name": "hook", "key": "token"},
                        "Authorization": {"name": "hook", "key": "auth"},
                    },
                },
            }
        )
    )
    assert (route.alertmanager, route.slack) == (None, None)
    assert route.webhook is not None
    assert route.webhook.headers == (
        ("Authorization", SecretRefIR("hook", "auth")),
        ("X-Token", SecretRefIR("hook", "token")),
    )
    hash(route)
