"""Tests for runtime/examples/train_example.py: trains both example models into tmp dirs."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tools import REPO_ROOT

# Training needs the optional "train" extra; skip rather than fail where it is not installed.
pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")

if str(REPO_ROOT) not in sys.path:  # the project is not necessarily pip-installed
    sys.path.insert(0, str(REPO_ROOT))

from runtime.examples import train_example  # noqa: E402

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


# ------------------------------------------------------------------ pipeline mode

PIPELINE_ENV = (
    "KILN_DATA",
    "KILN_DATA_SHA256",
    "KILN_SEED",
    "KILN_HOLDOUT",
    "KILN_TARGET",
    "KILN_TIMESTAMP",
    "KILN_OUTPUT_DIR",
)


@pytest.fixture(autouse=True)
def _no_pipeline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A KILN_DATA left in the environment would switch every test to pipeline mode."""
    for name in PIPELINE_ENV:
        monkeypatch.delenv(name, raising=False)


def _features(out: Path, rows: int | None = None) -> Path:
    """features.parquet of the car-loan reference period, made by the features step."""
    from runtime.steps import features

    model = train_example.MODELS["car-loan-default"]
    source = out / "reference.parquet"
    source.parent.mkdir(parents=True, exist_ok=True)
    model.load()[0].head(rows).to_parquet(source, index=False)
    argv = ["--source", str(source), "--entity", "id", "--timestamp", "timestamp"]
    argv += ["--columns", ",".join(model.features), "--target", "repaid"]
    assert features.main([*argv, "--out", str(out / "features")]) == 0
    return out / "features" / "features.parquet"


@pytest.fixture(scope="module")
def full_features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _features(tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="module")
def small_features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _features(tmp_path_factory.mktemp("small"), rows=3000)


def _pipeline_env(monkeypatch: pytest.MonkeyPatch, data: Path, out: Path, seed: int = 0) -> None:
    monkeypatch.setenv("KILN_DATA", str(data))
    monkeypatch.setenv("KILN_DATA_SHA256", _sha256(data))
    monkeypatch.setenv("KILN_SEED", str(seed))
    monkeypatch.setenv("KILN_HOLDOUT", "0.2")
    monkeypatch.setenv("KILN_TARGET", "repaid")
    monkeypatch.setenv("KILN_TIMESTAMP", "timestamp")
    monkeypatch.setenv("KILN_OUTPUT_DIR", str(out))


def test_pipeline_mode_reproduces_the_example_artifact(
    trained: Path, full_features: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The features step keeps repaid_loan_on_prev_car as bool; training casts it to 0/1.
    _pipeline_env(monkeypatch, full_features, tmp_path)
    assert train_example.main(["--model", "car-loan-default"]) == 0
    # Same rows, same 80/20 time split, same seed: the very bytes example mode writes.
    assert _sha256(tmp_path / "model.onnx") == _sha256(_model_path(trained, "car-loan-default"))


def test_pipeline_mode_is_deterministic_and_trains_on_the_first_rows(
    small_features: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    digests = []
    for run in ("a", "b"):
        _pipeline_env(monkeypatch, small_features, tmp_path / run, seed=7)
        assert train_example.main(["--model", "car-loan-default"]) == 0
        digests.append(_sha256(tmp_path / run / "model.onnx"))
        assert [p.name for p in (tmp_path / run).iterdir()] == ["model.onnx"]
    assert digests[0] == digests[1]
    assert "train rows=2400 holdout rows=600 seed=7" in capsys.readouterr().out


def test_pipeline_flags_take_precedence_over_the_environment(
    small_features: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _pipeline_env(monkeypatch, small_features, tmp_path / "env-out")
    monkeypatch.setenv("KILN_DATA", str(tmp_path / "not-there.parquet"))
    monkeypatch.delenv("KILN_DATA_SHA256")
    argv = ["--model", "car-loan-default", "--data", str(small_features)]
    argv += ["--holdout", "0.5", "--seed", "3", "--output-dir", str(tmp_path / "flag-out")]
    assert train_example.main(argv) == 0
    assert (tmp_path / "flag-out" / "model.onnx").is_file()
    assert not (tmp_path / "env-out").exists()
    assert "train rows=1500 holdout rows=1500 seed=3" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KILN_OUTPUT_DIR": ""}, "needs KILN_DATA (--data) and KILN_OUTPUT_DIR"),
        ({"KILN_DATA_SHA256": "0" * 64}, "but KILN_DATA_SHA256 is 0000"),
        ({"KILN_SEED": "seven"}, "KILN_SEED (--seed) must be a number"),
        ({"KILN_TARGET": "no_such_column"}, "lacks column(s) no_such_column"),
        ({"KILN_DATA": "/no/such/features.parquet"}, "no such file: /no/such/features.parquet"),
    ],
)
def test_pipeline_mode_errors_are_one_line(
    small_features: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    message: str,
) -> None:
    _pipeline_env(monkeypatch, small_features, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert train_example.main(["--model", "car-loan-default"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "model.onnx").exists()


def test_pipeline_mode_needs_one_model(small_features: Path) -> None:
    with pytest.raises(SystemExit) as excinfo:
        train_example.main(["--data", str(small_features)])
    assert excinfo.value.code == 2
