"""Kiln's built-in trainer (runtime/steps/train.py) on NannyML's real data sets: the graph
it exports, its determinism, its parity check and its refusals."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from runtime.contract.steps import TRAIN_ENV
from runtime.contract.trainers import ESTIMATORS, NATIVE_ONLY, find_estimator
from runtime.steps import train
from runtime.steps.trainer_graph import estimator_class
from tests.tools import REPO_ROOT

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
nml = pytest.importorskip("nannyml")

LOAN = [
    {"name": "car_value", "dtype": "fp32", "kind": "continuous"},
    {"name": "salary_range", "dtype": "string", "kind": "categorical"},
    {"name": "debt_to_income_ratio", "dtype": "fp32", "kind": "continuous"},
    {"name": "loan_length", "dtype": "fp32", "kind": "continuous"},
    {"name": "repaid_loan_on_prev_car", "dtype": "int64", "kind": "categorical"},
    {"name": "size_of_downpayment", "dtype": "string", "kind": "categorical"},
    {"name": "driver_tenure", "dtype": "fp32", "kind": "continuous"},
]
PRICE = [
    {"name": n, "dtype": "fp32", "kind": "continuous"}
    for n in ("car_age", "km_driven", "price_new", "accident_count", "door_count")
] + [{"name": n, "dtype": "string", "kind": "categorical"} for n in ("fuel", "transmission")]
EXAMPLE = {"library": "sklearn", "estimator": "hist_gradient_boosting"}
EXAMPLE_PARAMS = {"max_iter": 100, "max_leaf_nodes": 15}
ROWS = 6000  # enough for every estimator, quick on two cores


@pytest.fixture(scope="module")
def loan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "loan.parquet"
    nml.load_synthetic_car_loan_dataset()[0].to_parquet(path)
    return path


@pytest.fixture(scope="module")
def price(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "price.parquet"
    nml.load_synthetic_car_price_dataset()[0].head(ROWS).to_parquet(path)
    return path


def run(
    monkeypatch: pytest.MonkeyPatch,
    data: Path,
    out: Path,
    trainer: dict[str, Any],
    task: str,
    features: list[dict[str, str]],
    target: str,
    classes: list[Any] | None = None,
    name: str = "m",
) -> bytes:
    """One train step as the pipeline runs it; the model's bytes."""
    for variable, value in (
        (TRAIN_ENV.data, str(data)),
        (TRAIN_ENV.output_dir, str(out)),
        (TRAIN_ENV.target, target),
        (TRAIN_ENV.timestamp, "timestamp"),
        (TRAIN_ENV.seed, "0"),
        (TRAIN_ENV.holdout, "0.2"),
    ):
        monkeypatch.setenv(variable, value)
    argv = ["--trainer", json.dumps(trainer), "--task", task, "--features", json.dumps(features)]
    argv += ["--name", name] + ([] if classes is None else ["--classes", json.dumps(classes)])
    assert train.main(argv) == 0
    return (out / "model.onnx").read_bytes()


def test_the_example_artifacts_come_from_the_builtin_trainer_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch, loan: Path, tmp_path: Path
) -> None:
    """The committed car-loan model is what the trainer writes from NannyML's reference
    period with the spec's settings, and a second run writes the very same bytes."""
    trainer = {**EXAMPLE, "params": EXAMPLE_PARAMS}
    task, name = "binary_classification", "car-loan-default"
    first = run(monkeypatch, loan, tmp_path / "a", trainer, task, LOAN, "repaid", name=name)
    again = run(monkeypatch, loan, tmp_path / "b", trainer, task, LOAN, "repaid", name=name)
    assert first == again
    committed = REPO_ROOT / "specs/artifacts/models/car-loan-default/1/model.onnx"
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(committed.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "estimator",
    # LightGBM is trained natively only (test_train_native.py).
    [e for e in ESTIMATORS if "regression" in e.classes and e.library not in NATIVE_ONLY],
    ids=lambda e: e.key,
)
def test_every_regressor_exports_the_featureset_as_inputs_and_is_deterministic(
    monkeypatch: pytest.MonkeyPatch, price: Path, tmp_path: Path, estimator: Any
) -> None:
    trainer = {"library": estimator.library, "estimator": estimator.name, "params": {}}
    if estimator.name in ("random_forest", "gradient_boosting"):
        trainer["params"] = {"n_estimators": 10}
    first = run(monkeypatch, price, tmp_path / "a", trainer, "regression", PRICE, "y_true")
    assert run(monkeypatch, price, tmp_path / "b", trainer, "regression", PRICE, "y_true") == first
    session = ort.InferenceSession(first, providers=["CPUExecutionProvider"])
    expected = {"fp32": "tensor(float)", "string": "tensor(string)"}
    assert [(i.name, i.type, i.shape[1]) for i in session.get_inputs()] == [
        (f["name"], expected[f["dtype"]], 1) for f in PRICE
    ]
    [output] = session.get_outputs()
    assert (output.name, output.type, output.shape[1]) == ("prediction", "tensor(float)", 1)


@pytest.mark.parametrize(
    "estimator",
    ["logistic_regression", "random_forest", "xgb_classifier"],
)
def test_classifiers_give_labels_and_probabilities_without_zipmap(
    monkeypatch: pytest.MonkeyPatch, loan: Path, tmp_path: Path, estimator: str
) -> None:
    library = "xgboost" if estimator.startswith("xgb") else "sklearn"
    params = {"n_estimators": 10} if estimator != "logistic_regression" else {}
    trainer = {"library": library, "estimator": estimator, "params": params}
    payload = run(
        monkeypatch, loan, tmp_path, trainer, "binary_classification", LOAN, "repaid", [0, 1]
    )
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    outputs = {o.name: o.type for o in session.get_outputs()}
    assert outputs == {"label": "tensor(int64)", "probabilities": "tensor(float)"}
    # An unseen category is all zeros after one-hot, not an error.
    feed: dict[str, np.ndarray] = {
        f["name"]: np.array([["never seen"]], dtype=object)
        if f["dtype"] == "string"
        else np.array([[1]], dtype=np.int64 if f["dtype"] == "int64" else np.float32)
        for f in LOAN
    }
    label, probabilities = session.run(["label", "probabilities"], feed)
    assert label.shape == (1,) and np.isclose(probabilities.sum(), 1.0, atol=1e-5)


def test_string_classes_in_a_multiclass_model_follow_the_declared_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "multi.parquet"
    nml.load_synthetic_multiclass_classification_dataset()[0].head(ROWS).to_parquet(data)
    features = [
        {"name": "acq_channel", "dtype": "string", "kind": "categorical"},
        {"name": "app_behavioral_score", "dtype": "fp32", "kind": "continuous"},
        {"name": "is_customer", "dtype": "int64", "kind": "categorical"},
    ]
    classes = ["highstreet_card", "prepaid_card", "upmarket_card"]
    trainer = {**EXAMPLE, "params": {"max_iter": 20}}
    payload = run(
        monkeypatch,
        data,
        tmp_path,
        trainer,
        "multiclass_classification",
        features,
        "y_true",
        classes,
    )
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    assert {o.name: o.type for o in session.get_outputs()}["label"] == "tensor(string)"
    # A declared order the data does not have: refused, nothing written.
    monkeypatch.setenv(TRAIN_ENV.output_dir, str(tmp_path / "refused"))
    argv = ["--trainer", json.dumps(trainer), "--task", "multiclass_classification"]
    argv += ["--features", json.dumps(features), "--name", "m"]
    assert train.main([*argv, "--classes", json.dumps(list(reversed(classes)))]) == 1
    assert not (tmp_path / "refused").exists()


def test_xgboost_text_classes_come_back_as_labels_from_the_onnx_graph(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """XGBoost learns the sorted labels as 0..K-1; the graph's label map names them again,
    and the train step's parity check has compared them with the library's on the holdout."""
    data = tmp_path / "multi.parquet"
    nml.load_synthetic_multiclass_classification_dataset()[0].head(ROWS).to_parquet(data)
    features = [
        {"name": "acq_channel", "dtype": "string", "kind": "categorical"},
        {"name": "app_behavioral_score", "dtype": "fp32", "kind": "continuous"},
        {"name": "is_customer", "dtype": "int64", "kind": "categorical"},
    ]
    classes = ["highstreet_card", "prepaid_card", "upmarket_card"]
    trainer = {"library": "xgboost", "estimator": "xgb_classifier", "params": {"n_estimators": 20}}
    task = "multiclass_classification"
    payload = run(monkeypatch, data, tmp_path / "a", trainer, task, features, "y_true", classes)
    again = run(monkeypatch, data, tmp_path / "b", trainer, task, features, "y_true", classes)
    assert payload == again
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    assert {o.name: o.type for o in session.get_outputs()}["label"] == "tensor(string)"
    holdout = pd.read_parquet(data).tail(ROWS // 5)
    feed = {
        f["name"]: holdout[f["name"]]
        .to_numpy()
        .astype(
            object if f["dtype"] == "string" else np.float32 if f["dtype"] == "fp32" else np.int64
        )
        .reshape(-1, 1)
        for f in features
    }
    labels, probabilities = session.run(["label", "probabilities"], feed)
    assert set(labels) <= set(classes)
    assert list(labels) == [classes[i] for i in np.argmax(probabilities, axis=1)]
    # The labels are the model's answers: well above chance on real data.
    assert np.mean(labels == holdout["y_true"].to_numpy()) > 0.5


def test_a_wrong_data_digest_stops_training(
    monkeypatch: pytest.MonkeyPatch, price: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TRAIN_ENV.data_sha256, "0" * 64)
    with pytest.raises(AssertionError):
        run(monkeypatch, price, tmp_path, {**EXAMPLE, "params": {}}, "regression", PRICE, "y_true")
    assert "does not have the sha256" in capsys.readouterr().err


def test_the_parity_check_fails_a_graph_that_disagrees_with_the_library(
    monkeypatch: pytest.MonkeyPatch, price: Path, tmp_path: Path
) -> None:
    """The check compares real onnxruntime outputs: a model whose library predictions are
    shifted (as a broken converter's would be) is refused."""
    payload = run(
        monkeypatch, price, tmp_path, {**EXAMPLE, "params": {}}, "regression", PRICE, "y_true"
    )
    trainer = json.dumps({**EXAMPLE, "params": {}})
    features = json.dumps(PRICE)
    settings = train.settings_from(
        ["--trainer", trainer, "--task", "regression", "--features", features, "--name", "m"]
    )
    train_rows, holdout_rows = train.read_rows(settings)
    model, _ = train.fit(
        settings, train.inputs(settings, train_rows), train_rows["y_true"].to_numpy()
    )
    x = train.inputs(settings, holdout_rows)
    assert train.parity(settings, model, "onnx", payload, x) < 1.0

    class Shifted:
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return model.predict(frame) + 10.0

    with pytest.raises(train.StepError, match="onnx model differs from the library"):
        train.parity(settings, Shifted(), "onnx", payload, x)  # type: ignore[arg-type]


def test_the_table_lists_only_parameters_each_class_takes() -> None:
    for estimator in ESTIMATORS:
        for task in estimator.classes:
            taken = set(estimator_class(estimator, task)().get_params())
            assert estimator.params <= taken, estimator.key
            assert set(estimator.defaults) <= taken, estimator.key
    assert find_estimator("sklearn", "no_such") is None


def test_a_parameter_value_the_estimator_refuses_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, price: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = {**EXAMPLE, "params": {"max_iter": "many"}}
    with pytest.raises(AssertionError):
        run(monkeypatch, price, tmp_path, trainer, "regression", PRICE, "y_true")
    error = capsys.readouterr().err
    assert error.startswith("error: sklearn/hist_gradient_boosting cannot be fitted:")
    assert "max_iter" in error and "Traceback" not in error
