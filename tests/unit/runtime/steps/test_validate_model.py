"""Tests for runtime/steps/validate_model.py on the example models and their NannyML data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ruamel.yaml import YAML

from tests.tools import REPO_ROOT

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
import nannyml

from runtime.steps import validate_model

LOADERS = {
    "car-loan-default": nannyml.load_synthetic_car_loan_dataset,
    "car-price": nannyml.load_synthetic_car_price_dataset,
}


def signature(model: str) -> dict[str, Any]:
    spec = YAML(typ="safe").load(REPO_ROOT / "specs" / "models" / f"{model}.yaml")["spec"]
    return {
        "model": model,
        "max_batch_size": spec["serving"]["max_batch_size"],
        **spec["signature"],
    }


def artifact(model: str) -> Path:
    return REPO_ROOT / "specs" / "artifacts" / "models" / model / "1" / "model.onnx"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    paths = {}
    for model, load in LOADERS.items():
        paths[model] = folder / f"{model}.parquet"
        # Fewer rows than the largest batch: the sample batch repeats them.
        load()[0].head(40).to_parquet(paths[model], index=False)
    return paths


def args(
    model: str, data: Path, out: Path, sig: dict[str, Any] | None = None, *extra: str
) -> list[str]:
    return [
        *("--model", str(artifact(model)), "--data", str(data)),
        *("--signature", json.dumps(sig or signature(model))),
        *("--batch-sizes", "1,64", "--repeats", "20", "--out", str(out), *extra),
    ]


@pytest.mark.parametrize("model", sorted(LOADERS))
def test_example_models_pass(model: str, data: dict[str, Path], tmp_path: Path) -> None:
    assert (
        validate_model.main(args(model, data[model], tmp_path, None, "--slo-p99-ms", "1000")) == 0
    )
    report = json.loads((tmp_path / "validation.json").read_text())
    assert report["passed"] is True
    assert report["signature"] == {"matches": True, "mismatches": []}
    assert sorted(report["latency"]) == ["1", "64"]
    for entry in report["latency"].values():
        assert 0 < entry["p50_ms"] <= entry["p99_ms"]
        assert 1 <= entry["runs"] <= 20


def mutated(model: str, group: str, tensor_name: str, **changes: Any) -> dict[str, Any]:
    sig = signature(model)
    for tensor in sig[group]:
        if tensor["name"] == tensor_name:
            tensor.update(changes)
    return sig


@pytest.mark.parametrize(
    ("sig", "message"),
    [
        (
            mutated("car-loan-default", "inputs", "car_value", dtype="fp64"),
            "signature mismatch: input car_value: dtype is fp32 in the model, fp64 in the",
        ),
        (
            mutated("car-loan-default", "outputs", "probabilities", shape=[-1, 3]),
            "signature mismatch: output probabilities: shape is [-1, 2] in the model, [-1, 3]",
        ),
        (
            mutated("car-price", "outputs", "prediction", name="price"),
            "signature mismatch: output price: not in the model (it has: prediction)",
        ),
        (
            mutated("car-price", "inputs", "fuel", name="fuel_type"),
            "signature mismatch: input fuel: the model needs it, the signature does not list it",
        ),
    ],
)
def test_signature_mismatch_names_the_tensor(
    sig: dict[str, Any],
    message: str,
    data: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = sig["model"]
    assert validate_model.main(args(model, data[model], tmp_path, sig)) == 1
    assert message in capsys.readouterr().err
    report = json.loads((tmp_path / "validation.json").read_text())
    assert report["passed"] is False and report["signature"]["matches"] is False


def test_zipmap_output_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    classifier = LogisticRegression().fit(x, [0, 0, 1, 1])
    proto = skl2onnx.convert_sklearn(
        classifier, initial_types=[("x", FloatTensorType([None, 1]))], target_opset=17
    )
    model = tmp_path / "zipmap.onnx"
    model.write_bytes(proto.SerializeToString())
    data = tmp_path / "x.parquet"
    import pandas as pd

    pd.DataFrame({"x": [0.5, 2.5]}).to_parquet(data)
    sig = {
        "inputs": [{"name": "x", "dtype": "fp32", "shape": [-1, 1]}],
        "outputs": [{"name": "output_label", "dtype": "int64", "shape": [-1]}],
    }
    argv = ["--model", str(model), "--data", str(data), "--signature", json.dumps(sig)]
    assert validate_model.main([*argv, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "output output_probability: is a seq(map(int64,tensor(float))), not a tensor" in err


def test_p99_above_the_slo_names_the_batch_size(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = args("car-price", data["car-price"], tmp_path, None, "--slo-p99-ms", "0.000001")
    assert validate_model.main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" at ")[1].split(" exceeds")[0] for line in lines] == [
        "batch size 1",
        "batch size 64",
    ]
    assert all(line.endswith("exceeds the SLO of 1e-06 ms") for line in lines)
    assert json.loads((tmp_path / "validation.json").read_text())["passed"] is False


def test_batch_size_above_max_batch_size_is_refused(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = args("car-loan-default", data["car-loan-default"], tmp_path)
    argv[argv.index("--batch-sizes") + 1] = "1,65"
    assert validate_model.main(argv) == 1
    assert "batch size 65 exceeds the signature's max_batch_size 64" in capsys.readouterr().err


def test_module_entry_point(data: dict[str, Path], tmp_path: Path) -> None:
    sig = mutated("car-loan-default", "inputs", "loan_length", dtype="int64")
    argv = args("car-loan-default", data["car-loan-default"], tmp_path, sig)
    completed = subprocess.run(
        [sys.executable, "-m", "runtime.steps.validate_model", *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith("signature mismatch: input loan_length: dtype is fp32")
    assert "Traceback" not in completed.stderr
