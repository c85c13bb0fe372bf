"""Tree models (xgboost, lightgbm) and python models on the local Triton: the local config
runs them through the python backend while the cluster's stays FIL; the repository gets
the adapter and its helpers; the adapter answers as FIL would, with the real libraries."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import lightgbm
import numpy as np
import pytest
import xgboost
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as mc

from compiler.api import build
from compiler.targets import triton
from runtime.contract import capture as capture_contract
from runtime.contract.formats import (
    FORMATS,
    LOCAL_FILE_PARAMETER,
    LOCAL_FORMAT_PARAMETER,
    NOT_SERVED_LOCALLY,
    local_run,
)
from runtime.contract.served import ArtifactSource
from runtime.contract.signature import Tensor
from runtime.contract.tree_predict import Node, TreePredictor
from runtime.contract.xgboost_file import for_xgboost_2
from runtime.local.serve import ADAPTER, ADAPTER_FILES, TREE_FILES, adapter_files
from runtime.serving.assemble import assemble
from runtime.serving.references import FIL_TOLERANCES, reference_for
from runtime.serving.smoke import compare_outputs, served_format
from runtime.steps.model_runner import open_runner
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
    assert {"model.py", "tree_predict.py"} <= set(names)
    assert (folder / "1" / "model.txt").read_bytes() == LGBM.read_bytes()


def _rows(width: int, count: int = 200) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(count, width)).astype(np.float32) * 3


def test_a_binary_xgboost_classifier_answers_fil_probabilities_and_classes() -> None:
    # XGB was written by XGBoost 3: the library reads it right once base_score is given
    # as xgboost 2.1 takes it (tests/unit/runtime/contract/test_xgboost_file.py).
    booster = xgboost.Booster(model_file=bytearray(for_xgboost_2(XGB.read_bytes()).payload))
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


def test_the_adapter_the_steps_and_smoke_answer_through_one_tree_predictor() -> None:
    sys.path.insert(0, str(TREE_FILES[0].parent))  # as the adapter finds it in its folder
    try:
        import tree_predict as beside_the_adapter  # type: ignore[import-not-found]
    finally:
        del sys.path[0]
    parameters = {"model_type": "lightgbm", "output_class": "false"}
    served = beside_the_adapter.TreePredictor(str(EXAMPLE_LGBM), parameters)
    (node,) = served.get_inputs()
    assert (node.name, node.type, node.shape) == ("input__0", "tensor(float)", ["N", 5])
    rows = _rows(5)
    (answer,) = served.run(["output__0"], {"input__0": rows})
    # The pipeline's steps run the file as Kiln's trainer publishes it: for a regressor,
    # exactly what the local Triton serves; smoke's reference is the same predictor.
    runner = open_runner(EXAMPLE_LGBM)
    assert runner.get_inputs() == [Node("input__0", "tensor(float)", ["N", 5])]
    assert np.array_equal(runner.run(None, {"input__0": rows})[0], answer)
    reference = reference_for("lightgbm", EXAMPLE_LGBM, parameters, exact=True)
    assert reference.columns(signature=None) == list(runner.features)  # type: ignore[arg-type]
    assert np.array_equal(reference.run({"input__0": rows}, ["output__0"])["output__0"], answer)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_one_module_loads_a_tree_model_to_predict_and_the_trainer_to_fit() -> None:
    loading = sorted(
        path.relative_to(REPO_ROOT).as_posix()
        for path in (REPO_ROOT / "runtime").rglob("*.py")
        if _imports(path) & {"xgboost", "lightgbm"}
    )
    assert loading == [
        "runtime/contract/tree_predict.py",  # every prediction
        "runtime/steps/lightgbm_booster.py",  # fitting
        "runtime/steps/trainer_graph.py",  # fitting
    ]


def test_smoke_holds_fil_to_its_tolerance_and_the_adapter_to_exact_equality() -> None:
    output = (Tensor("output__0", "fp32", (-1, 1)),)
    want = {"output__0": np.array([[20000.0], [1.0]], dtype=np.float32)}
    tolerance = FIL_TOLERANCES["lightgbm"]
    # Float32 rounding of partial sums as large as 20,000 moves the small answer too.
    nudged = {"output__0": want["output__0"] + np.float32(0.0625)}
    assert compare_outputs(output, nudged, want, True, "lightgbm", tolerance) == []
    exact = compare_outputs(output, nudged, want, True, "lightgbm", None)
    assert exact and "differs from lightgbm" in exact[0]
    off = {"output__0": want["output__0"] + 1}
    assert compare_outputs(output, off, want, True, "lightgbm", tolerance)


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


def test_the_adapter_puts_its_folder_on_the_import_path_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config("income-lgbm", "local")
    # Capture needs Triton's own module for its metrics, which this test stands in for.
    del config.parameters[capture_contract.PARAMETER]
    text = triton.serialize(config)
    folder = assemble(
        "income-lgbm",
        [ArtifactSource(1, str(LGBM))],
        text,
        tmp_path,
        extra_files=adapter_files(text),
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", types.ModuleType("pb"))
    monkeypatch.setattr(np, "__version__", "1.26.4")  # the backend venv's numpy
    spec = importlib.util.spec_from_file_location("kiln_adapter_in_repo", folder / "1" / "model.py")
    assert spec is not None and spec.loader is not None
    adapter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(adapter)
    model = adapter.TritonPythonModel()
    as_dict = json_format.MessageToDict(config, preserving_proto_field_name=True)
    # Triton may name the model folder unnormalised; it is still the one folder.
    args = {"model_config": json.dumps(as_dict), "model_repository": f"{folder}/."}
    model.initialize({**args, "model_version": "1"})
    version = os.path.realpath(folder / "1")
    assert [p for p in sys.path if os.path.realpath(p) == version] == [str(folder / "1")]
    rows = _rows(model.session.get_inputs()[0].shape[1])
    (answer,) = model.session.run(["output__0"], {"input__0": rows})
    assert answer.shape == (len(rows), 1)
