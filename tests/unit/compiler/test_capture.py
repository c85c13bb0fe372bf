"""serving.capture resolved per environment: on by default locally, the columns the
monitor reads, the captured folder as the analysis data, and its labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from compiler.served import model_ir
from compiler.targets import triton
from compiler.targets.monitor_config import config_from_ir
from runtime.contract import capture as contract

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    return tmp_path / "specs"


def edit(specs: Path, model: str, old: str, new: str) -> None:
    path = specs / "models" / f"{model}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_local_environment_captures_by_default_with_the_monitors_columns(specs: Path) -> None:
    ir, _ = model_ir(specs, "car-loan-default", "local")
    capture = ir.capture
    assert capture is not None and capture.sample == 1.0
    assert capture.inputs == tuple(t.name for t in ir.inputs)
    assert capture.prediction == contract.OutputColumn("y_pred", "label")
    assert capture.scores == (contract.OutputColumn("y_pred_proba", "probabilities", 1),)
    assert capture.data == ".kiln/data" and capture.timestamp == "timestamp"
    # Rendered for the capture step as a parameter of Triton's own message.
    config = triton.build_config(ir)
    parsed = contract.CaptureConfig.from_json(config.parameters[contract.PARAMETER].string_value)
    assert parsed == capture


def test_the_captured_traffic_is_the_analysis_data_and_its_labels_are_joined(
    specs: Path,
) -> None:
    ir, _ = model_ir(specs, "car-loan-default", "local")
    config = config_from_ir(ir)
    # This environment's partition only: every environment captures into one folder.
    assert config.analysis.uri == ".kiln/data/car-loan-default/captured/environment=local/"
    assert config.analysis.uri == ".kiln/data/" + contract.environment_path(ir.name, "local")
    assert config.labels is not None
    assert config.labels.uri == ".kiln/data/car-loan-default/labels/"
    assert config.labels.keys == [contract.REQUEST_ID]  # the entity is not a model input
    # An environment naming its analysis data joins its labels by the FeatureSet's id.
    staging, _ = model_ir(specs, "car-loan-default", "staging")
    assert staging.capture is None
    labels = config_from_ir(staging).labels
    assert labels is not None and labels.keys == [staging.featureset.spec.entity] == ["id"]
    assert labels.uri == "s3://acme-data/car-loan-default/labels/"
    assert contract.PARAMETER not in triton.build_config(staging).parameters


def test_the_whole_captured_folder_named_is_still_served_traffic(specs: Path) -> None:
    """A spec may name the captured folder itself (every environment's rows): its rows
    still carry request ids, so its labels are joined by them."""
    edit(
        specs,
        "car-loan-default",
        "      monitoring: {analysis: null}",
        "      monitoring: {analysis: {uri: car-loan-default/captured/, lookback: null}}",
    )
    ir, _ = model_ir(specs, "car-loan-default", "local")
    config = config_from_ir(ir)
    assert config.analysis.uri == ".kiln/data/car-loan-default/captured/"
    assert config.labels is not None and config.labels.keys == [contract.REQUEST_ID]


def test_capture_off_keeps_the_config_plain(specs: Path) -> None:
    edit(
        specs,
        "car-price",
        "      monitoring: {analysis: {uri: car-price/analysis.parquet, lookback: null}}",
        "      monitoring: {analysis: {uri: car-price/analysis.parquet, lookback: null}}\n"
        "      serving: {capture: {enabled: false}}",
    )
    ir, _ = model_ir(specs, "car-price", "local")
    assert ir.capture is None
    assert contract.PARAMETER not in triton.build_config(ir).parameters


def test_a_sample_and_flush_settings_are_carried(specs: Path) -> None:
    edit(
        specs,
        "car-price",
        "      monitoring: {analysis: {uri: car-price/analysis.parquet, lookback: null}}",
        "      monitoring: {analysis: {uri: car-price/analysis.parquet, lookback: null}}\n"
        "      serving: {capture: {sample: 0.1, buffer_rows: 500, flush_rows: 50, "
        "flush_interval: 1m}}",
    )
    ir, _ = model_ir(specs, "car-price", "local")
    assert ir.capture is not None
    assert (ir.capture.sample, ir.capture.buffer_rows, ir.capture.flush_rows) == (0.1, 500, 50)
    assert ir.capture.flush_seconds == 60
    # Regression: the first output is the prediction; no score columns.
    assert ir.capture.prediction == contract.OutputColumn("y_pred", "prediction")
    assert ir.capture.scores == ()


def test_the_partition_layout() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 12, 7, 5, 9, tzinfo=UTC)
    assert contract.partition("local", 3, when) == (
        "environment=local/version=3/date=2026-12-07/hour=05"
    )
    assert contract.captured_uri("s3://d/", "m") == "s3://d/m/captured/"
    assert contract.row_request_id("r", 0, 1) == "r"
    assert contract.row_request_id("r", 2, 3) == "r#2"
