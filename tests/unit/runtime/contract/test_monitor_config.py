"""The monitor config the job reads: validation, round trips, the duration grammar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from runtime.contract.durations import duration_seconds
from runtime.contract.monitor_config import MonitorConfig, config_text, load_config
from runtime.examples.monitor_examples import car_loan_config, car_price_config, with_updates
from tests.tools import REPO_ROOT

ROOT = REPO_ROOT
HOOK = {"name": "hook", "webhook": {"url": "http://127.0.0.1:9/"}}


def _rule(**extra: Any) -> dict[str, Any]:
    return {"name": "r", "signal": "drift", "severity": "warning", "route": "hook", **extra}


def _invalid(config: MonitorConfig, **updates: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        with_updates(config, **updates)
    return str(caught.value)


def test_examples_validate_and_round_trip(tmp_path: Path) -> None:
    for config in (car_loan_config(), car_price_config()):
        path = tmp_path / "c.json"
        path.write_text(config_text(config))
        assert load_config(path) == config
        assert config_text(load_config(path)) == config_text(config)


def test_config_text_is_sorted_and_stable() -> None:
    text = config_text(car_loan_config(alerts=[_rule(**{"for": "2h"})], routes=[HOOK]))
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data["alerts"][0]["for"] == "2h"  # the alias, as in specs
    assert text.endswith("}\n")


def test_unknown_fields_are_errors() -> None:
    raw = json.loads(config_text(car_loan_config()))
    raw["columns"]["extra"] = 1
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        MonitorConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"performance": {"estimator": "dle", "metrics": ["mae"]}}, "dle estimates regression"),
        ({"performance": {"estimator": "cbpe", "metrics": ["mae"]}}, "cbpe cannot estimate mae"),
        ({"chunking": {"size": 10, "count": 3}}, "exactly one of period, size, count"),
        ({"alerts": [_rule()]}, "sends to route 'hook', which is not configured"),
        ({"alerts": [_rule(feature="nope")], "routes": [HOOK]}, "'nope', which is not a feature"),
        (
            {"alerts": [_rule(signal="estimated_performance", metric="f2")], "routes": [HOOK]},
            "metric 'f2', which is not computed",
        ),
        (
            {"alerts": [_rule(signal="unseen_values", feature="car_value")], "routes": [HOOK]},
            "unseen values are checked on categorical features only",
        ),
        ({"alerts": [_rule(**{"for": "soon"})], "routes": [HOOK]}, "is not a duration"),
        ({"alerts": [_rule(), _rule()], "routes": [HOOK]}, "alert 'r' is listed twice"),
        (
            {"drift": None, "performance": None, "data_quality": None},
            "computes nothing",
        ),
    ],
)
def test_inconsistent_configs_are_refused(updates: dict[str, Any], message: str) -> None:
    assert message in _invalid(car_loan_config(), **updates)


def test_alert_on_a_signal_that_is_not_computed() -> None:
    config = car_price_config()  # no data quality, no multivariate drift
    text = _invalid(config, alerts=[_rule(signal="missing_values")], routes=[HOOK])
    assert "watches missing_values, which this monitor does not compute" in text


def test_score_shape_follows_the_task() -> None:
    text = _invalid(car_loan_config(), task="multiclass_classification")
    assert "score column per class" in text


def test_features_cannot_double_as_role_columns() -> None:
    raw = json.loads(config_text(car_loan_config()))
    raw["columns"]["prediction"] = "car_value"
    with pytest.raises(ValidationError, match="both a feature and the prediction column"):
        MonitorConfig.model_validate(raw)


def test_durations() -> None:
    assert duration_seconds("7d") == 7 * 86400
    assert duration_seconds("1h30m") == 5400
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds("7 days")
