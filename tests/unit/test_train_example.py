"""Tests for runtime/train_example.py: trains both example models into tmp dirs."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

# Training needs the optional "train" extra; skip rather than fail where it is not installed.
pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # the project is not necessarily pip-installed
    sys.path.insert(0, str(REPO_ROOT))

from runtime import train_example  # noqa: E402

MAX_BYTES = 500 * 1024

EXPECTED_INPUTS = {
    "car-loan-default": [
        ("car_value", "tensor(float)"),
        ("salary_range", "tensor(string)"),
        ("debt_to_income_ratio", "tensor(float)"),
        ("loan_length", "tensor(float)"),
        ("repaid_loan_on_prev_car", "tensor(int64)"),
        ("size_of_downpayment", "tensor(string)"),
        ("driver_tenure", "tensor(float)"),
    ],
    "car-price": [
        ("car_age", "tensor(float)"),
        ("km_driven", "tensor(float)"),
        ("price_new", "tensor(float)"),
        ("accident_count", "tensor(float)"),
        ("door_count", "tensor(float)"),
        ("fuel", "tensor(string)"),
        ("transmission", "tensor(string)"),
    ],
}

EXPECTED_OUTPUTS = {
    "car-loan-default": [
        ("label", "tensor(int64)", [None]),
        ("probabilities", "tensor(float)", [None, 2]),
    ],
    "car-price": [("prediction", "tensor(float)", [None, 1])],
}


def _train(out: Path) -> Path:
    metrics = out / "metrics.json"
    assert train_example.main(["--out", str(out), "--metrics-json", str(metrics)]) == 0
    return metrics


def _model_path(out: Path, name: str) -> Path:
    return out / name / "1" / "model.onnx"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _session(out: Path, name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(_model_path(out, name)), providers=["CPUExecutionProvider"])


# Training both models takes a few seconds; do it once per module (plus once more for the
# determinism check) instead of once per test.
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    _train(out)
    return out


@pytest.fixture(scope="module")
def holdout() -> dict[str, dict[str, np.ndarray]]:
    feeds = {}
    for name, model in train_example.MODELS.items():
        split = train_example.time_split(model, train_example.load_reference(model))
        feeds[name] = train_example.onnx_feeds(split.x_holdout.head(500))
    return feeds


@pytest.mark.parametrize("name", sorted(EXPECTED_INPUTS))
def test_model_file_written_and_small(trained: Path, name: str) -> None:
    path = _model_path(trained, name)
    assert path.is_file()
    assert 0 < path.stat().st_size < MAX_BYTES
    # Atomic writes must not leave their temp files behind.
    assert [p.name for p in path.parent.iterdir()] == ["model.onnx"]
    assert path.stat().st_mode & 0o044 == 0o044  # readable by a model server's user


@pytest.mark.parametrize("name", sorted(EXPECTED_INPUTS))
def test_onnx_inputs_one_per_raw_feature(trained: Path, name: str) -> None:
    inputs = _session(trained, name).get_inputs()
    assert [(i.name, i.type) for i in inputs] == EXPECTED_INPUTS[name]
    assert all(i.shape == [None, 1] for i in inputs)


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_onnx_outputs(trained: Path, name: str) -> None:
    outputs = _session(trained, name).get_outputs()
    assert [(o.name, o.type, o.shape) for o in outputs] == EXPECTED_OUTPUTS[name]


def test_classifier_probabilities_are_valid(
    trained: Path, holdout: dict[str, dict[str, np.ndarray]]
) -> None:
    label, proba = _session(trained, "car-loan-default").run(None, holdout["car-loan-default"])
    assert proba.shape == (500, 2)
    assert np.all((proba >= 0.0) & (proba <= 1.0))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert set(np.unique(label)) <= {0, 1}
    np.testing.assert_array_equal(label, proba.argmax(axis=1))


def test_regressor_predictions_are_finite(
    trained: Path, holdout: dict[str, dict[str, np.ndarray]]
) -> None:
    (prediction,) = _session(trained, "car-price").run(None, holdout["car-price"])
    assert prediction.shape == (500, 1)
    assert np.all(np.isfinite(prediction))


def test_unseen_category_does_not_fail(
    trained: Path, holdout: dict[str, dict[str, np.ndarray]]
) -> None:
    feeds = {k: v[:3].copy() for k, v in holdout["car-price"].items()}
    feeds["fuel"] = np.array([["hydrogen"]] * 3, dtype=object)
    (prediction,) = _session(trained, "car-price").run(None, feeds)
    assert np.all(np.isfinite(prediction))


def test_metrics_json(trained: Path) -> None:
    text = (trained / "metrics.json").read_text()
    document = json.loads(text)
    assert list(document) == sorted(document) == ["car-loan-default", "car-price"]
    for name, entry in document.items():
        assert entry["sha256"] == _sha256(_model_path(trained, name))
    assert 0.5 < document["car-loan-default"]["metrics"]["roc_auc"] <= 1.0
    assert document["car-price"]["metrics"]["mae"] > 0.0


def test_two_runs_are_byte_identical(trained: Path, tmp_path: Path) -> None:
    metrics = _train(tmp_path)
    for name in EXPECTED_INPUTS:
        assert _sha256(_model_path(tmp_path, name)) == _sha256(_model_path(trained, name))
    assert metrics.read_bytes() == (trained / "metrics.json").read_bytes()


def test_single_model_and_version_flags(trained: Path, tmp_path: Path) -> None:
    argv = ["--model", "car-price", "--out", str(tmp_path), "--version", "3"]
    assert train_example.main(argv) == 0
    written = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.onnx")]
    assert written == ["car-price/3/model.onnx"]
    # The version only picks the directory; the model bytes do not depend on it.
    assert _sha256(tmp_path / written[0]) == _sha256(_model_path(trained, "car-price"))


@pytest.mark.parametrize("argv", [["--model", "nope"], ["--version", "0"]])
def test_bad_arguments_are_rejected(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        train_example.main(argv)
    assert excinfo.value.code == 2
