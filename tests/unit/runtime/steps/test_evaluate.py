"""Tests for runtime/steps/evaluate.py on the example models and a slice of their NannyML data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ruamel.yaml import YAML

from tests.tools import REPO_ROOT

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
import nannyml

from runtime.steps import evaluate

ROWS = 3000  # 600 held out: enough for stable metrics, fast to run
ALL_CLASSIFICATION = "roc_auc,f1,precision,recall,specificity,accuracy,average_precision"
ALL_REGRESSION = "mae,mape,mse,msle,rmse,rmsle,r2"


def signature(model: str) -> dict[str, Any]:
    """The signature as the compiler hands it over, read from the example spec."""
    spec = YAML(typ="safe").load(REPO_ROOT / "specs" / "models" / f"{model}.yaml")["spec"]
    return {
        "model": model,
        "max_batch_size": spec["serving"]["max_batch_size"],
        **spec["signature"],
    }


def artifact(model: str) -> Path:
    return REPO_ROOT / "specs" / "artifacts" / "models" / model / "1" / "model.onnx"


@pytest.fixture(scope="module")
def loan_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("loan") / "features.parquet"
    nannyml.load_synthetic_car_loan_dataset()[0].head(ROWS).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def price_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("price") / "features.parquet"
    nannyml.load_synthetic_car_price_dataset()[0].head(ROWS).to_parquet(path, index=False)
    return path


def loan_args(data: Path, out: Path, *extra: str, metrics: str = ALL_CLASSIFICATION) -> list[str]:
    return [
        *("--model", str(artifact("car-loan-default")), "--data", str(data)),
        *("--signature", json.dumps(signature("car-loan-default"))),
        *("--task", "binary_classification", "--target", "repaid"),
        *("--timestamp", "timestamp", "--holdout", "0.2", "--metrics", metrics),
        *("--out", str(out), *extra),
    ]


def price_args(data: Path, out: Path, *extra: str, metrics: str = ALL_REGRESSION) -> list[str]:
    return [
        *("--model", str(artifact("car-price")), "--data", str(data)),
        *("--signature", json.dumps(signature("car-price"))),
        *("--task", "regression", "--target", "y_true"),
        *("--timestamp", "timestamp", "--holdout", "0.2", "--metrics", metrics),
        *("--out", str(out), *extra),
    ]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_classification_metrics(loan_data: Path, tmp_path: Path) -> None:
    assert evaluate.main(loan_args(loan_data, tmp_path)) == 0
    metrics = read_json(tmp_path / "metrics.json")
    assert list(metrics) == sorted(ALL_CLASSIFICATION.split(","))
    assert metrics["roc_auc"] > 0.9
    assert all(0.5 < value <= 1.0 for value in metrics.values())
    assert all(round(value, 6) == value for value in metrics.values())
    report = read_json(tmp_path / "evaluation.json")
    assert (report["rows"], report["holdout_rows"], report["passed"]) == (ROWS, 600, True)


def test_metrics_are_byte_identical_across_runs(loan_data: Path, tmp_path: Path) -> None:
    for run in ("a", "b"):
        assert evaluate.main(loan_args(loan_data, tmp_path / run)) == 0
    for name in ("metrics.json", "evaluation.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_signature_from_a_file(loan_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "signature.json"
    path.write_text(json.dumps(signature("car-loan-default")))
    args = loan_args(loan_data, tmp_path / "out", metrics="roc_auc")
    args[args.index("--signature") + 1] = str(path)
    assert evaluate.main(args) == 0
    assert list(read_json(tmp_path / "out" / "metrics.json")) == ["roc_auc"]


def test_a_gate_above_the_model_fails_with_the_shortfall(
    loan_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gates = json.dumps([{"metric": "roc_auc", "min": 0.999}, {"metric": "f1", "min": 0.5}])
    assert evaluate.main(loan_args(loan_data, tmp_path, "--gates", gates)) == 1
    auc = read_json(tmp_path / "metrics.json")["roc_auc"]  # written before the gates
    expected = f"gate failed: roc_auc {auc:.4f} is below the minimum 0.999 by {0.999 - auc:.4f}"
    captured = capsys.readouterr()
    assert captured.err.strip() == expected
    assert "gate passed: f1" in captured.out
    report = read_json(tmp_path / "evaluation.json")
    assert [g["passed"] for g in report["gates"]] == [False, True]


def test_every_gate_is_evaluated_and_every_failure_listed(
    loan_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gates = [
        {"metric": "roc_auc", "min": 0.999},
        {"metric": "accuracy", "min": 0.5},
        {"metric": "roc_auc", "max_regression": 0.001},
        {"metric": "recall", "min": 0.9999},
    ]
    args = loan_args(loan_data, tmp_path, metrics="roc_auc")
    args += ["--gates", json.dumps(gates), "--baseline", '{"roc_auc": 0.9999}']
    assert evaluate.main(args) == 1
    failures = capsys.readouterr().err.strip().splitlines()
    assert [line.split()[2] for line in failures] == ["roc_auc", "roc_auc", "recall"]
    assert "dropped by" in failures[1] and "from the baseline 0.9999" in failures[1]
    # Gated metrics are recorded even when --metrics does not list them.
    assert set(read_json(tmp_path / "metrics.json")) == {"accuracy", "recall", "roc_auc"}


def test_regression_gate_without_baseline_is_skipped_with_a_note(
    loan_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gates = json.dumps([{"metric": "roc_auc", "max_regression": 0.01}])
    args = loan_args(loan_data, tmp_path, "--gates", gates, "--baseline", "{}")
    assert evaluate.main(args) == 0
    assert "skipped: the baseline has no roc_auc" in capsys.readouterr().out
    assert read_json(tmp_path / "evaluation.json")["gates"][0]["skipped"] is True


def test_regression_gate_before_any_served_version_passes_with_a_note(
    loan_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model's first run has no --baseline: max_regression passes, min still applies."""
    gates = json.dumps(
        [{"metric": "roc_auc", "max_regression": 0.01}, {"metric": "roc_auc", "min": 1.1}]
    )
    assert evaluate.main(loan_args(loan_data, tmp_path, "--gates", gates)) == 1
    captured = capsys.readouterr()
    assert "max_regression 0.01 passed: no version is served yet" in captured.out
    assert "is below the minimum 1.1" in captured.out + captured.err
    outcome = read_json(tmp_path / "evaluation.json")["gates"]
    assert [(g["passed"], g["skipped"]) for g in outcome] == [(True, True), (False, False)]


def test_regression_metrics(price_data: Path, tmp_path: Path) -> None:
    assert evaluate.main(price_args(price_data, tmp_path)) == 0
    metrics = read_json(tmp_path / "metrics.json")
    assert list(metrics) == sorted(ALL_REGRESSION.split(","))
    assert 0 < metrics["mae"] < 2000
    assert metrics["rmse"] == pytest.approx(metrics["mse"] ** 0.5, rel=1e-5)
    assert metrics["rmsle"] == pytest.approx(metrics["msle"] ** 0.5, rel=1e-5)
    assert 0.5 < metrics["r2"] <= 1.0


def test_mae_regression_means_a_rise(
    price_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert evaluate.main(price_args(price_data, tmp_path / "m", metrics="mae")) == 0
    mae = read_json(tmp_path / "m" / "metrics.json")["mae"]
    gates = json.dumps([{"metric": "mae", "max_regression": 50}])
    # The serving version was much worse: a lower mae is an improvement, however large.
    better = json.dumps({"mae": mae + 500})
    assert (
        evaluate.main(
            price_args(price_data, tmp_path / "a", "--gates", gates, "--baseline", better)
        )
        == 0
    )
    # The serving version was better by more than the allowance: the mae rose too far.
    worse = json.dumps({"metrics": {"mae": mae - 80}})  # a whole version entry works too
    assert (
        evaluate.main(price_args(price_data, tmp_path / "b", "--gates", gates, "--baseline", worse))
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gate failed: mae {mae:.4f} rose by 80.0000 from the baseline")
    assert err.endswith("more than the allowed 50 by 30.0000")


def test_max_gate_on_mae(
    price_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gates = json.dumps([{"metric": "mae", "max": 10}])
    assert evaluate.main(price_args(price_data, tmp_path, "--gates", gates, metrics="mae")) == 1
    assert "is above the maximum 10 by" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--metrics", "roc_auc,mae"), "unknown metric(s) mae for binary_classification"),
        (("--gates", '[{"metric": "f1", "min": 0.1, "max": 0.9}]'), "exactly one of"),
        (("--holdout", "1.5"), "holdout must be between 0 and 1"),
        (("--target", "nope"), "lacks column(s) nope"),
    ],
)
def test_bad_arguments_exit_1_with_one_line(
    loan_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str],
    message: str,
) -> None:
    args = loan_args(loan_data, tmp_path)
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += change
    assert evaluate.main(args) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_input_column_is_named(
    loan_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_parquet(loan_data).drop(columns=["driver_tenure"])
    data = tmp_path / "partial.parquet"
    frame.to_parquet(data, index=False)
    assert evaluate.main(loan_args(data, tmp_path / "out")) == 1
    assert "lacks column(s) driver_tenure" in capsys.readouterr().err


def test_module_entry_point(loan_data: Path, tmp_path: Path) -> None:
    gates = json.dumps([{"metric": "roc_auc", "min": 0.999}])
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.steps.evaluate",
            *loan_args(loan_data, tmp_path, "--gates", gates),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith("gate failed: roc_auc ")
    assert "[evaluate] 600 of 3000 rows held out" in completed.stdout
    assert "Traceback" not in completed.stderr


def test_multiclass_metrics(tmp_path: Path) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(["bus", "car", "tram"], 200))
    centre = {"bus": 0.0, "car": 2.0, "tram": 4.0}
    x = np.array([centre[label] for label in labels]) + rng.normal(0.0, 0.8, len(labels))
    frame = pd.DataFrame(
        {
            "x": x.astype(np.float32),
            "vehicle": labels,
            "ts": pd.date_range("2024-01-01", periods=len(labels), freq="min").astype(str),
        }
    ).sample(frac=1.0, random_state=0)  # the step orders rows by time itself
    classifier = LogisticRegression().fit(frame[["x"]], frame["vehicle"])
    proto = skl2onnx.convert_sklearn(
        classifier,
        initial_types=[("x", FloatTensorType([None, 1]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=17,
    )
    model = tmp_path / "model.onnx"
    model.write_bytes(proto.SerializeToString())
    data = tmp_path / "data.parquet"
    frame.to_parquet(data, index=False)
    sig = {
        "inputs": [{"name": "x", "dtype": "fp32", "shape": [-1, 1]}],
        "outputs": [
            {"name": "label", "dtype": "string", "shape": [-1]},
            {"name": "probabilities", "dtype": "fp32", "shape": [-1, 3]},
        ],
    }
    args = ["--model", str(model), "--data", str(data), "--signature", json.dumps(sig)]
    args += ["--task", "multiclass_classification", "--target", "vehicle", "--timestamp", "ts"]
    args += ["--holdout", "0.5", "--metrics", ALL_CLASSIFICATION, "--out", str(tmp_path / "out")]
    assert evaluate.main(args) == 0
    metrics = read_json(tmp_path / "out" / "metrics.json")
    assert metrics["roc_auc"] > 0.9 and metrics["accuracy"] > 0.7
    assert 0.0 < metrics["specificity"] <= 1.0


def test_undefined_metric_is_named(
    loan_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "one-class.parquet"
    pd.read_parquet(loan_data).assign(repaid=1.0).to_parquet(data, index=False)
    assert evaluate.main(loan_args(data, tmp_path / "out", metrics="accuracy,roc_auc")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: roc_auc ") and len(err.splitlines()) == 1
