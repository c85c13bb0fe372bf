"""Tree models (xgboost, lightgbm) and python models on the local Triton: the local config
runs them through the python backend while the cluster's stays FIL; the repository gets
the adapter and its helpers; the adapter answers as FIL would, with the real libraries."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import lightgbm
import numpy as np
import pytest
import xgboost
from tritonclient.grpc import model_config_pb2 as mc

from compiler.api import build
from compiler.targets import triton
from runtime.contract.formats import (
    FORMATS,
    LOCAL_FILE_PARAMETER,
    LOCAL_FORMAT_PARAMETER,
    NOT_SERVED_LOCALLY,
    local_run,
)
from runtime.contract.served import ArtifactSource
from runtime.contract.signature import Tensor
from runtime.contract.tree_predict import TreePredictor
from runtime.local.serve import ADAPTER, ADAPTER_FILES, TREE_FILES, adapter_files
from runtime.serving.assemble import assemble
from runtime.serving.references import FIL_TOLERANCE
from runtime.serving.smoke import compare_outputs, served_format
from tests.tools import REPO_ROOT

SPECS = REPO_ROOT / "tests" / "golden" / "formats" / "specs"
ARTIFACTS = SPECS / "artifacts" / "models"
XGB = ARTIFACTS / "default-xgb" / "1" / "xgboost.json"
LGBM = ARTIFACTS / "income-lgbm" / "1" / "model.txt"
EXAMPLE_LGBM = REPO_ROOT / "specs" / "artifacts" / "models" / "car-price-gbm" / "1" / "model.txt"


def _configs() -> dict[tuple[str, str], mc.ModelConfig]:
    result = build(SPECS)
    assert result.ok
    return {
        (m.name, m.environment.name): triton.parse(triton.serialize(triton.build_config(m)))
        for m in result.resolution.models
        if m.is_served
    }


CONFIGS = _configs()


def _config(model: str, environment: str) -> mc.ModelConfig:
    return CONFIGS[(model, environment)]


def _parameters(config: mc.ModelConfig) -> dict[str, str]:
    return {k: v.string_value for k, v in config.parameters.items()}


@pytest.mark.parametrize(
    ("model", "file"), [("default-xgb", "xgboost.json"), ("income-lgbm", "model.txt")]
)
def test_tree_models_run_through_the_python_backend_locally_and_fil_in_a_cluster(
    model: str, file: str
) -> None:
    local, cluster = _config(model, "local"), _config(model, "gpu")
    assert (cluster.backend, cluster.default_model_filename) == ("fil", file)
    # Locally default_model_filename would name the python file: the adapter is model.py.
    assert (local.backend, local.default_model_filename) == ("python", "")
    parameters = _parameters(local)
    assert local_run(parameters, local.default_model_filename) == (
        "xgboost" if model == "default-xgb" else "lightgbm",
        file,
    )
    # FIL's own parameters stay, so the adapter answers as FIL would.
    fil = {k: v for k, v in parameters.items() if not k.startswith("kiln_")}
    assert fil == _parameters(cluster)


def test_a_python_model_is_its_own_backend_model_locally() -> None:
    local = _config("default-python", "local")
    assert (local.backend, local.default_model_filename) == ("python", "model.py")
    # The conda-pack archive is a cluster's: locally the stub runs Kiln's backend venv.
    assert "EXECUTION_ENV_PATH" not in local.parameters
    assert "EXECUTION_ENV_PATH" in _config("default-python", "gpu").parameters
    assert adapter_files(triton.serialize(local)) == []


def test_formats_the_local_triton_cannot_run_keep_their_cluster_runner_and_a_reason() -> None:
    assert {n for n, f in FORMATS.items() if not f.local} == set(NOT_SERVED_LOCALLY)
    local = _config("default-tf", "local")
    assert (local.platform, local.backend) == ("tensorflow_savedmodel", "")


def test_the_adapter_reads_the_parameters_the_compiler_writes() -> None:
    # The adapter imports nothing from Kiln: its copies of the names are checked here.
    tree = ast.parse(ADAPTER.read_text(encoding="utf-8"))
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert constants["FORMAT_PARAMETER"] == LOCAL_FORMAT_PARAMETER
    assert constants["FILE_PARAMETER"] == LOCAL_FILE_PARAMETER


def test_the_local_repository_holds_the_tree_model_the_adapter_and_its_helpers(
    tmp_path: Path,
) -> None:
    text = triton.serialize(_config("income-lgbm", "local"))
    files = adapter_files(text)
    assert files == [*ADAPTER_FILES, *TREE_FILES]
    folder = assemble(
        "income-lgbm", [ArtifactSource(1, str(LGBM))], text, tmp_path, extra_files=files
    )
    names = sorted(p.name for p in (folder / "1").iterdir())
    assert names == sorted(["model.txt", *(f.name for f in files)])
    assert {"model.py", "tree_predict.py", "tree_session.py"} <= set(names)
    assert (folder / "1" / "model.txt").read_bytes() == LGBM.read_bytes()


def _rows(width: int, count: int = 200) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(count, width)).astype(np.float32) * 3


def test_a_binary_xgboost_classifier_answers_fil_probabilities_and_classes() -> None:
    booster = xgboost.Booster(model_file=str(XGB))
    rows = _rows(booster.num_features())
    # The library's own P(class 1).
    positive = booster.predict(xgboost.DMatrix(rows, feature_names=booster.feature_names))
    proba = TreePredictor(
        str(XGB), {"model_type": "xgboost_json", "output_class": "true", "predict_proba": "true"}
    )
    assert np.array_equal(proba.predict(rows), np.stack([1 - positive, positive], 1).astype("f4"))
    classes = TreePredictor(
        str(XGB), {"model_type": "xgboost_json", "output_class": "true", "threshold": "0.3"}
    )
    assert np.array_equal(classes.predict(rows)[:, 0], (positive > 0.3).astype("f4"))
    assert 0 < classes.predict(rows).sum() < len(rows)  # both classes occur


def test_a_lightgbm_regressor_answers_the_librarys_value() -> None:
    booster = lightgbm.Booster(model_file=str(LGBM))
    rows = _rows(booster.num_feature())
    served = TreePredictor(str(LGBM), {"model_type": "lightgbm", "output_class": "false"})
    assert served.predict(rows).shape == (len(rows), 1)
    assert np.array_equal(served.predict(rows)[:, 0], booster.predict(rows).astype("f4"))


def test_the_adapters_tree_session_is_the_predictor_behind_onnxruntimes_api() -> None:
    sys.path.insert(0, str(Path(TREE_FILES[1]).parent))  # as the adapter does in its folder
    sys.path.insert(0, str(TREE_FILES[0].parent))
    try:
        from tree_session import TreeSession  # type: ignore[import-not-found]
    finally:
        del sys.path[:2]
    parameters = {"model_type": "lightgbm", "output_class": "false"}
    session = TreeSession(str(EXAMPLE_LGBM), parameters)
    (node,) = session.get_inputs()
    assert (node.name, node.type, node.shape) == ("input__0", "tensor(float)", [None, 5])
    rows = _rows(5)
    (answer,) = session.run(["output__0"], {"input__0": rows})
    assert np.array_equal(answer, TreePredictor(str(EXAMPLE_LGBM), parameters).predict(rows))


def test_smoke_holds_fil_to_its_tolerance_and_the_adapter_to_exact_equality() -> None:
    output = (Tensor("output__0", "fp32", (-1, 1)),)
    want = {"output__0": np.array([[20000.0], [1.0]], dtype=np.float32)}
    nudged = {"output__0": want["output__0"] * np.float32(1 + 2e-7)}  # a float32 ulp or so
    assert compare_outputs(output, nudged, want, True, "lightgbm", FIL_TOLERANCE) == []
    exact = compare_outputs(output, nudged, want, True, "lightgbm", None)
    assert exact and "differs from lightgbm" in exact[0]
    off = {"output__0": want["output__0"] + 1}
    assert compare_outputs(output, off, want, True, "lightgbm", FIL_TOLERANCE)


GENERATED = REPO_ROOT / "generated"


def test_the_smoke_job_reads_the_format_from_the_config_it_is_given() -> None:
    cluster = served_format(GENERATED / "production" / "car-price-gbm" / "triton" / "config.pbtxt")
    # Against FIL the library is held to FIL's tolerance; against the local adapter, exactly.
    assert (cluster.format, cluster.exact, cluster.parameters["model_type"]) == (
        "lightgbm",
        False,
        "lightgbm",
    )
    local = served_format(GENERATED / "local" / "car-price-gbm" / "triton" / "config.pbtxt")
    assert (local.format, local.exact) == ("lightgbm", True)
    onnx = served_format(GENERATED / "local" / "car-price" / "triton" / "config.pbtxt")
    assert (onnx.format, onnx.exact) == ("onnx", True)


def test_the_rollouts_smoke_job_gets_the_config_of_a_tree_model_only() -> None:
    def command(model: str) -> str:
        path = GENERATED / "production" / model / f"analysistemplate-{model}-analysis.yaml"
        return path.read_text(encoding="utf-8")

    assert '"--config"\n                      - /etc/kiln/triton/config.pbtxt' in command(
        "car-price-gbm"
    )
    assert "--config" not in command("car-price")
