"""What `config_from_ir` renders from the example specs: the monitor job's config."""

from __future__ import annotations

from typing import Any

import pytest

from compiler.targets.monitor_config import config_from_ir, data_location
from runtime.contract.monitor_config import config_text
from tests.tools import REPO_ROOT

ROOT = REPO_ROOT


def test_relative_data_uris_sit_under_the_data_store() -> None:
    assert data_location("car-loan/ref.parquet", "s3://acme-data/") == (
        "s3://acme-data/car-loan/ref.parquet"
    )
    assert data_location("gs://other/x.parquet", "s3://acme-data") == "gs://other/x.parquet"


@pytest.fixture(scope="module")
def example_models() -> list[Any]:
    from compiler.api import build

    result = build(ROOT / "specs")
    assert result.ok, [d.message for d in result.diagnostics]
    return [m for m in result.resolution.models if m.monitoring is not None]


def test_config_from_ir_renders_every_example_model(example_models: list[Any]) -> None:
    assert {m.name for m in example_models} >= {"car-loan-default", "car-price"}
    for model in example_models:
        config = config_from_ir(model)
        assert (config.model, config.environment) == (model.name, model.environment.name)
        assert config.version == model.serving.version
        # FeatureSet roles, never dtype inference
        spec = model.featureset.spec
        assert [(f.name, f.kind) for f in config.columns.features] == [
            (f.name, f.kind) for f in spec.features
        ]
        # serving alerts are Prometheus rules, not the monitor's
        assert all(a.signal not in ("latency_p99_ms", "error_rate") for a in config.alerts)
        assert {r.name for r in config.routes} == {a.route for a in config.alerts}
        assert config_text(config) == config_text(config_from_ir(model))


def test_config_from_ir_resolves_data_and_keeps_the_lookback(example_models: list[Any]) -> None:
    loan = next(
        m for m in example_models if m.name == "car-loan-default" and m.environment.name != "local"
    )
    config = config_from_ir(loan)
    assert config.analysis.uri.startswith(loan.storage.data.rstrip("/") + "/")
    # The config keeps the lookback as written; the IR holds its text beside the seconds.
    assert config.analysis.lookback == loan.monitoring.analysis.lookback.text
    repaid = next(f for f in config.columns.features if f.name == "repaid_loan_on_prev_car")
    assert (repaid.dtype, repaid.kind, repaid.values) == ("int64", "categorical", [0, 1])
