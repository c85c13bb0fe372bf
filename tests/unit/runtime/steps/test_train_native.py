"""The built-in trainer's native output (`training.trainer.output: native`) on NannyML's
real data: XGBoost's own JSON written deterministically, run by the evaluate and validate
steps as Triton's FIL backend serves it, published with its format and FIL settings, and
promoted into a spec that compiles into a FIL config Triton's ModelConfig parses."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from click.testing import CliRunner
from google.protobuf import text_format
from sklearn.metrics import roc_auc_score
from tritonclient.grpc import model_config_pb2

from compiler.api import compile_tree
from compiler.cli import cli
from runtime.contract.steps import TRAIN_ENV
from runtime.steps import evaluate, publish, train, validate_model
from runtime.steps.model_runner import open_runner

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
nml = pytest.importorskip("nannyml")

# car-loan's numeric columns, in the FeatureSet's order below.
LOAN = [
    {"name": "car_value", "dtype": "fp32", "kind": "continuous"},
    {"name": "debt_to_income_ratio", "dtype": "fp32", "kind": "continuous"},
    {"name": "loan_length", "dtype": "fp32", "kind": "continuous"},
    {"name": "repaid_loan_on_prev_car", "dtype": "int64", "kind": "categorical"},
    {"name": "driver_tenure", "dtype": "fp32", "kind": "continuous"},
]
PRICE = [
    {"name": n, "dtype": "fp32", "kind": "continuous"}
    for n in ("car_age", "km_driven", "price_new", "accident_count", "door_count")
]
NATIVE = {"library": "xgboost", "output": "native", "params": {"n_estimators": 30}}
CLASSIFIER = {**NATIVE, "estimator": "xgb_classifier"}
REGRESSOR = {**NATIVE, "estimator": "xgb_regressor"}
LIGHTGBM = {**NATIVE, "library": "lightgbm"}
LGBM_CLASSIFIER = {**LIGHTGBM, "estimator": "lgbm_classifier"}
LGBM_REGRESSOR = {**LIGHTGBM, "estimator": "lgbm_regressor"}
# library -> (its file, the FIL settings publish records for a classifier)
FILES = {
    "xgboost": ("xgboost.json", {"model_type": "xgboost_json"}),
    "lightgbm": ("model.txt", {"model_type": "lightgbm"}),
}
FIL_CLASSIFIER = {"output_class": True, "predict_proba": True}
ROWS = 6000


@pytest.fixture(scope="module")
def loan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "loan.parquet"
    nml.load_synthetic_car_loan_dataset()[0].head(ROWS).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def price(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "price.parquet"
    nml.load_synthetic_car_price_dataset()[0].head(ROWS).to_parquet(path)
    return path


def train_argv(trainer: dict[str, Any], task: str, features: list[dict[str, str]]) -> list[str]:
    argv = ["--trainer", json.dumps(trainer), "--task", task, "--features", json.dumps(features)]
    return [*argv, "--name", "m"]


def run_train(
    monkeypatch: pytest.MonkeyPatch, data: Path, out: Path, target: str, argv: list[str]
) -> int:
    for variable, value in (
        (TRAIN_ENV.data, str(data)),
        (TRAIN_ENV.output_dir, str(out)),
        (TRAIN_ENV.target, target),
        (TRAIN_ENV.timestamp, "timestamp"),
        (TRAIN_ENV.seed, "0"),
        (TRAIN_ENV.holdout, "0.2"),
    ):
        monkeypatch.setenv(variable, value)
    return train.main(argv)


def trained(monkeypatch: pytest.MonkeyPatch, data: Path, out: Path, target: str, **kw: Any) -> Path:
    assert run_train(monkeypatch, data, out, target, train_argv(**kw)) == 0
    assert not (out / "model.onnx").exists()
    return out / FILES[kw["trainer"]["library"]][0]


def own_scores(path: Path, rows: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The library's own answer for `rows`, read from the file without Kiln's runner
    (fp32 inputs, as FIL takes them): a probability or a value per row (class 1 of a
    binary classifier)."""
    matrix = rows[names].to_numpy(dtype=np.float32)
    if path.name == "model.txt":
        return np.asarray(lightgbm.Booster(model_file=str(path)).predict(matrix))
    booster = xgboost.Booster(model_file=str(path))
    return np.asarray(booster.predict(xgboost.DMatrix(matrix, feature_names=names)))


def fil_signature(width: int, outputs: int) -> dict[str, Any]:
    return {
        "model": "m",
        "max_batch_size": 1024,
        "inputs": [{"name": "input__0", "dtype": "fp32", "shape": [-1, width]}],
        "outputs": [{"name": "output__0", "dtype": "fp32", "shape": [-1, outputs]}],
    }


def evaluate_argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    signature = json.dumps(fil_signature(len(LOAN), 2))
    return [
        *("--model", str(model), "--data", str(data), "--signature", signature),
        *("--task", "binary_classification", "--target", "repaid", "--timestamp", "timestamp"),
        *("--holdout", "0.2", "--metrics", "roc_auc", "--out", str(out), *extra),
    ]


def holdout(data: Path) -> pd.DataFrame:
    return pd.read_parquet(data).sort_values("timestamp", kind="stable").tail(ROWS // 5)


@pytest.mark.parametrize("trainer", [CLASSIFIER, LGBM_CLASSIFIER], ids=lambda t: t["library"])
def test_a_native_classifier_is_deterministic_and_names_the_featuresets_columns(
    monkeypatch: pytest.MonkeyPatch, loan: Path, tmp_path: Path, trainer: dict[str, Any]
) -> None:
    kw = {"trainer": trainer, "task": "binary_classification", "features": LOAN}
    path = trained(monkeypatch, loan, tmp_path / "a", "repaid", **kw)
    first = path.read_bytes()
    assert trained(monkeypatch, loan, tmp_path / "b", "repaid", **kw).read_bytes() == first
    # The file names the FeatureSet's columns, in its order: what the compiler reads.
    names = [f["name"] for f in LOAN]
    if trainer["library"] == "xgboost":
        assert json.loads(first)["learner"]["feature_names"] == names
    else:
        assert f"\nfeature_names={' '.join(names)}\n".encode() in first
    # The runner answers as FIL does: [1 - p, p] per row, p being the library's answer.
    rows = holdout(loan)
    own = own_scores(path, rows, names)
    runner = open_runner(path)
    [scores] = runner.run(None, runner.feeds(rows, []))
    assert scores.dtype == np.float32 and scores.shape == (len(rows), 2)
    np.testing.assert_array_equal(scores[:, 1], own.astype(np.float32))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("trainer", [REGRESSOR, LGBM_REGRESSOR], ids=lambda t: t["library"])
def test_a_native_regressor_gives_one_value_per_row(
    monkeypatch: pytest.MonkeyPatch, price: Path, tmp_path: Path, trainer: dict[str, Any]
) -> None:
    kw = {"trainer": trainer, "task": "regression", "features": PRICE}
    path = trained(monkeypatch, price, tmp_path, "y_true", **kw)
    rows = holdout(price)
    runner = open_runner(path)
    [values] = runner.run(None, runner.feeds(rows, []))
    assert values.shape == (len(rows), 1)
    own = own_scores(path, rows, [f["name"] for f in PRICE])
    np.testing.assert_array_equal(values[:, 0], own.astype(np.float32))
    # Real trees on real data: far better than predicting the mean.
    error = np.abs(values[:, 0] - rows["y_true"].to_numpy())
    assert error.mean() < 0.5 * np.abs(rows["y_true"] - rows["y_true"].mean()).mean()


def test_the_parity_check_fails_a_native_model_that_disagrees_with_the_library(
    monkeypatch: pytest.MonkeyPatch, price: Path, tmp_path: Path
) -> None:
    argv = train_argv(REGRESSOR, "regression", PRICE)
    assert run_train(monkeypatch, price, tmp_path, "y_true", argv) == 0
    settings = train.settings_from(argv)
    rows, held = train.read_rows(settings)
    model, _ = train.fit(settings, train.inputs(settings, rows), rows["y_true"].to_numpy())
    x = train.inputs(settings, held)
    payload = (tmp_path / "xgboost.json").read_bytes()
    assert train.parity(settings, model, "xgboost", payload, x) < 1e-3

    class Shifted:
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return model.predict(frame) + 10.0

    with pytest.raises(train.StepError, match="xgboost model differs from the library"):
        train.parity(settings, Shifted(), "xgboost", payload, x)  # type: ignore[arg-type]


def test_native_output_refuses_text_features_and_text_classes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "multi.parquet"
    nml.load_synthetic_multiclass_classification_dataset()[0].head(2000).to_parquet(data)
    text = [{"name": "acq_channel", "dtype": "string", "kind": "categorical"}]
    numbers = [{"name": "app_behavioral_score", "dtype": "fp32", "kind": "continuous"}]
    task = "multiclass_classification"
    out = tmp_path / "out"
    assert run_train(monkeypatch, data, out, "y_true", train_argv(CLASSIFIER, task, text)) == 1
    assert (
        "a native model reads numbers only; text features: acq_channel" in capsys.readouterr().err
    )
    assert run_train(monkeypatch, data, out, "y_true", train_argv(CLASSIFIER, task, numbers)) == 1
    assert "serves the classes 0..K-1 only" in capsys.readouterr().err
    sklearn = {**CLASSIFIER, "library": "sklearn", "estimator": "random_forest"}
    assert run_train(monkeypatch, data, out, "y_true", train_argv(sklearn, task, numbers)) == 1
    assert "has no output 'native'" in capsys.readouterr().err
    onnx = {**LGBM_CLASSIFIER, "output": "onnx"}
    assert run_train(monkeypatch, data, out, "y_true", train_argv(onnx, task, numbers)) == 1
    assert "lightgbm/lgbm_classifier has no output 'onnx'" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("trainer", [CLASSIFIER, LGBM_CLASSIFIER], ids=lambda t: t["library"])
def test_evaluate_and_validate_run_the_native_model(
    monkeypatch: pytest.MonkeyPatch, loan: Path, tmp_path: Path, trainer: dict[str, Any]
) -> None:
    kw = {"trainer": trainer, "task": "binary_classification", "features": LOAN}
    model = trained(monkeypatch, loan, tmp_path / "train", "repaid", **kw)
    signature = json.dumps(fil_signature(len(LOAN), 2))
    assert evaluate.main(evaluate_argv(model, loan, tmp_path / "eval")) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    rows = holdout(loan)
    own = own_scores(model, rows, [f["name"] for f in LOAN])
    expected = roc_auc_score(rows["repaid"], own.astype(np.float32))
    # evaluate records six decimals.
    assert metrics["roc_auc"] == round(expected, 6) and expected > 0.85
    validate = [
        *("--model", str(model), "--data", str(loan), "--batch-sizes", "1,1024"),
        *("--repeats", "5", "--out", str(tmp_path / "valid")),
    ]
    assert validate_model.main([*validate, "--signature", signature]) == 0
    report = json.loads((tmp_path / "valid" / "validation.json").read_text())
    assert report["passed"] and report["runner"] == trainer["library"]
    wrong = json.dumps(fil_signature(len(LOAN) + 1, 2))
    assert validate_model.main([*validate, "--signature", wrong]) == 1
    report = json.loads((tmp_path / "valid" / "validation.json").read_text())
    assert report["signature"]["mismatches"] == [
        "input input__0: shape is [-1, 5] in the model, [-1, 6] in the signature"
    ]


PROJECT = """\
apiVersion: kiln/v1alpha1
kind: Project
metadata: {name: native}
spec:
  git: {repo: https://github.com/example/native.git}
  images:
    runtime: ghcr.io/example/kiln-runtime:0.1.0
    triton: nvcr.io/nvidia/tritonserver:25.01-py3
  storage: {models: specs/artifacts/models, data: .kiln/data}
  environments:
    - {name: local, kind: local}
"""
FEATURESET = """\
apiVersion: kiln/v1alpha1
kind: FeatureSet
metadata: {name: loan}
spec:
  version: 1
  entity: id
  timestamp: timestamp
  source: {uri: loan/}
  features:
    - {name: car_value, dtype: float32, kind: continuous}
    - {name: debt_to_income_ratio, dtype: float32, kind: continuous}
    - {name: loan_length, dtype: float32, kind: continuous}
    - {name: repaid_loan_on_prev_car, dtype: int64, kind: categorical, values: [0, 1]}
    - {name: driver_tenure, dtype: float32, kind: continuous}
"""
MODEL = """\
apiVersion: kiln/v1alpha1
kind: Model
metadata: {name: loan-trees}
spec:
  task: binary_classification
  features: loan@1
  target: repaid
  classes: [0, 1]
  signature:
    inputs: [{name: input__0, dtype: fp32, shape: [-1, 5]}]
    outputs: [{name: output__0, dtype: fp32, shape: [-1, 2]}]
  serving: {max_batch_size: 1024}
  training:
    trainer: {library: LIBRARY, estimator: ESTIMATOR, output: native}
"""


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


@pytest.mark.parametrize("trainer", [CLASSIFIER, LGBM_CLASSIFIER], ids=lambda t: t["library"])
def test_a_published_native_version_is_promoted_and_compiles_into_a_fil_config(
    monkeypatch: pytest.MonkeyPatch, loan: Path, tmp_path: Path, trainer: dict[str, Any]
) -> None:
    library = trainer["library"]
    file, model_type = FILES[library]
    root = tmp_path / "platform"
    model_spec = MODEL.replace("LIBRARY", library).replace("ESTIMATOR", trainer["estimator"])
    for name, text in (("project", PROJECT), ("loan", FEATURESET), ("loan-trees", model_spec)):
        (root / "specs").mkdir(parents=True, exist_ok=True)
        (root / "specs" / f"{name}.yaml").write_text(text)
    result = compile_tree(root / "specs", root / "generated")
    assert result.ok, [d.text() for d in result.diagnostics]
    # The publish step runs as the compiler rendered it: its model file, format and FIL.
    steps = json.loads((root / "generated/local/loan-trees/pipeline.json").read_text())["steps"]
    command = next(s["command"] for s in steps if s["name"] == "publish")
    assert flag(command, "--model") == "{in:train}/" + file
    assert json.loads(flag(command, "--fil")) == {**model_type, **FIL_CLASSIFIER}
    kw = {"trainer": trainer, "task": "binary_classification", "features": LOAN}
    model = trained(monkeypatch, loan, tmp_path / "train", "repaid", **kw)
    evaluated = tmp_path / "eval"
    gates = json.dumps([{"metric": "roc_auc", "min": 0.85}])
    assert evaluate.main(evaluate_argv(model, loan, evaluated, "--gates", gates)) == 0
    monkeypatch.delenv("KILN_SIGNING_KEY", raising=False)
    argv = [
        *("--model", str(model), "--store", str(root / "specs/artifacts/models")),
        *("--format", flag(command, "--format"), "--fil", flag(command, "--fil")),
        *("--name", "loan-trees", "--version", "1", "--metrics", str(evaluated / "metrics.json")),
        *("--evaluation", str(evaluated / "evaluation.json")),
        *("--data-sha256", "d" * 64, "--seed", "0", "--out", str(tmp_path / "published")),
    ]
    assert publish.main(argv) == 0
    record = json.loads((tmp_path / "published" / "metadata.json").read_text())
    assert record["format"] == library and record["fil"] == {**model_type, **FIL_CLASSIFIER}
    assert record["artifact"]["uri"] == f"loan-trees/1/{file}"
    paths = ["--specs", str(root / "specs"), "--out", str(root / "generated")]
    promoted = CliRunner().invoke(cli, ["promote", "loan-trees", *paths])
    assert promoted.exit_code == 0, promoted.output
    spec = (root / "specs" / "loan-trees.yaml").read_text()
    assert f"    format: {library}\n" in spec
    fil = f'{{model_type: "{model_type["model_type"]}", output_class: true, predict_proba: true}}'
    assert f"    fil: {fil}" in spec
    check = CliRunner().invoke(cli, ["compile", "--check", *paths])
    assert check.exit_code == 0, check.output
    # The project's one environment is local: the local Triton runs the file through Kiln's
    # adapter with the library itself, keeping FIL's settings and tensors (docs/serving.md,
    # "Served locally"); a cluster environment renders backend "fil" from the same version.
    config = model_config_pb2.ModelConfig()
    text_format.Parse((root / "generated/local/loan-trees/triton/config.pbtxt").read_text(), config)
    assert config.backend == "python"
    assert config.parameters["kiln_format"].string_value == library
    assert config.parameters["kiln_model_file"].string_value == file
    parameters = {k: v.string_value for k, v in config.parameters.items()}
    assert parameters["model_type"] == model_type["model_type"]
    assert parameters["predict_proba"] == parameters["output_class"] == "true"
    assert [(i.name, list(i.dims)) for i in config.input] == [("input__0", [5])]
    assert [(o.name, list(o.dims)) for o in config.output] == [("output__0", [2])]


@pytest.mark.parametrize("trainer", [CLASSIFIER, LGBM_CLASSIFIER], ids=lambda t: t["library"])
def test_a_native_multiclass_model_gives_a_probability_per_class(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, trainer: dict[str, Any]
) -> None:
    """NannyML's multiclass set with its three card types recoded as 0..2, the classes a
    native model serves: FIL's output is then a probability per class."""
    data = tmp_path / "multi.parquet"
    frame = nml.load_synthetic_multiclass_classification_dataset()[0].head(ROWS)
    cards = sorted(frame["y_true"].unique())
    frame["card"] = frame["y_true"].map({card: i for i, card in enumerate(cards)})
    frame.to_parquet(data)
    features = [
        {"name": "app_behavioral_score", "dtype": "fp32", "kind": "continuous"},
        {"name": "requested_credit_limit", "dtype": "fp32", "kind": "continuous"},
        {"name": "credit_bureau_score", "dtype": "fp32", "kind": "continuous"},
        {"name": "stated_income", "dtype": "fp32", "kind": "continuous"},
        {"name": "is_customer", "dtype": "int64", "kind": "categorical"},
    ]
    argv = [*train_argv(trainer, "multiclass_classification", features), "--classes", "[0,1,2]"]
    assert run_train(monkeypatch, data, tmp_path / "out", "card", argv) == 0
    runner = open_runner(tmp_path / "out" / FILES[trainer["library"]][0])
    [output] = runner.get_outputs()
    assert (output.name, output.shape) == ("output__0", ["N", 3])
    rows = holdout(data)
    [scores] = runner.run(None, runner.feeds(rows, []))
    assert scores.shape == (len(rows), 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    # Real data: the most probable card is right far more often than chance (1/3).
    assert np.mean(np.argmax(scores, axis=1) == rows["card"].to_numpy()) > 0.5


def test_a_model_serving_onnx_turns_to_native_output(
    monkeypatch: pytest.MonkeyPatch, loan: Path, tmp_path: Path
) -> None:
    """Version 1 is the trainer's ONNX graph, served; the trainer now writes native files.
    With no declared signature the served file gives the model's, and the pipeline's
    evaluate step gets FIL's, which the native model it trains then passes."""
    root = tmp_path / "platform"
    store = root / "specs/artifacts/models/loan-trees/1"
    onnx = {**CLASSIFIER, "output": "onnx"}
    kw = {"trainer": onnx, "task": "binary_classification", "features": LOAN}
    assert run_train(monkeypatch, loan, store, "repaid", train_argv(**kw)) == 0
    served = hashlib.sha256((store / "model.onnx").read_bytes()).hexdigest()
    versions = (
        "  versions:\n"
        f"    - {{version: 1, artifact: {{uri: loan-trees/1/model.onnx, sha256: {served}}}}}\n"
        "  serving: {version: 1, max_batch_size: 1024}\n"
    )
    model_spec = MODEL.replace("LIBRARY", "xgboost").replace("ESTIMATOR", "xgb_classifier")
    model_spec = re.sub(r"  signature:\n(    .*\n)+  serving: .*\n", versions, model_spec)
    for name, text in (("project", PROJECT), ("loan", FEATURESET), ("loan-trees", model_spec)):
        (root / "specs" / f"{name}.yaml").write_text(text)
    result = compile_tree(root / "specs", root / "generated")
    assert result.ok, [d.text() for d in result.diagnostics]
    steps = json.loads((root / "generated/local/loan-trees/pipeline.json").read_text())["steps"]
    command = next(s["command"] for s in steps if s["name"] == "evaluate")
    assert json.loads(flag(command, "--signature")) == fil_signature(len(LOAN), 2) | {
        "model": "loan-trees"
    }
    model = trained(
        monkeypatch, loan, tmp_path / "train", "repaid", **{**kw, "trainer": CLASSIFIER}
    )
    argv = [model if word == "{in:train}/xgboost.json" else word for word in command[3:]]
    argv = [str(loan) if word == "{in:features}/features.parquet" else str(word) for word in argv]
    argv[argv.index("{out}")] = str(tmp_path / "eval")
    assert evaluate.main(argv) == 0
