"""Each format renders the platform or backend Triton runs it with, the file it loads
and the backend's parameters, through Triton's own ModelConfig; the load-time rules
of each backend refuse what that backend would refuse."""

from __future__ import annotations

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from compiler.api import build
from compiler.checks.backend_rules import backend_problems
from compiler.checks.triton_rules import load_time_problems
from compiler.diagnostics import render
from compiler.served import NotServable, model_ir
from compiler.targets import triton
from tests.tools import REPO_ROOT

SPECS = REPO_ROOT / "tests" / "golden" / "formats" / "specs"
EXPECTED = REPO_ROOT / "tests" / "golden" / "formats" / "expected"


def _configs() -> dict[tuple[str, str], mc.ModelConfig]:
    result = build(SPECS)
    assert result.ok, render(result.diagnostics, "text")
    return {
        (m.environment.name, m.name): triton.build_config(m)
        for m in result.resolution.models
        if m.is_served
    }


CONFIGS = _configs()


@pytest.mark.parametrize(
    ("model", "platform", "backend", "file"),
    [
        ("default-xgb", "", "fil", "xgboost.json"),
        ("income-lgbm", "", "fil", "model.txt"),
        ("default-tf", "tensorflow_savedmodel", "", "model.savedmodel"),
        ("default-torch", "pytorch_libtorch", "", "model.pt"),
        ("default-trt", "tensorrt_plan", "", "model.plan"),
        ("default-python", "", "python", "model.py"),
    ],
)
def test_each_format_renders_its_runner_and_file(
    model: str, platform: str, backend: str, file: str
) -> None:
    config = CONFIGS[("gpu", model)]
    assert (config.platform, config.backend, config.default_model_filename) == (
        platform,
        backend,
        file,
    )
    # The committed text is that message, and parses as Triton parses it.
    text = (EXPECTED / "gpu" / model / "triton" / "config.pbtxt").read_text()
    assert text_format.Parse(text, mc.ModelConfig()) == config


def test_fil_parameters_are_the_strings_fil_parses() -> None:
    xgb = {k: v.string_value for k, v in CONFIGS[("gpu", "default-xgb")].parameters.items()}
    assert xgb == {
        "model_type": "xgboost_json",
        "output_class": "true",
        "predict_proba": "true",
        "storage_type": "SPARSE",
        "algo": "NAIVE",
    }
    lgbm = CONFIGS[("gpu", "income-lgbm")]
    assert lgbm.parameters["output_class"].string_value == "false"  # a regressor
    assert [(t.name, t.data_type, list(t.dims)) for t in lgbm.input] == [
        ("input__0", mc.TYPE_FP32, [4])
    ]
    # predict_proba on a binary classifier: a score per class.
    assert list(CONFIGS[("gpu", "default-xgb")].output[0].dims) == [2]


def test_savedmodel_inputs_come_from_its_signature() -> None:
    config = CONFIGS[("gpu", "default-tf")]
    assert [t.name for t in config.input] == ["age", "debt_ratio", "income", "tenure"]
    assert [t.name for t in config.output] == ["score"]


def test_python_requirements_archive_is_the_execution_env_beside_model_py() -> None:
    parameters = CONFIGS[("gpu", "default-python")].parameters
    assert parameters["EXECUTION_ENV_PATH"].string_value == (
        "$$TRITON_MODEL_DIRECTORY/1/python-env.tar.gz"
    )


def test_the_tensorrt_plan_serves_only_where_there_are_gpus() -> None:
    assert ("gpu", "default-trt") in CONFIGS
    assert ("local", "default-trt") not in CONFIGS
    groups = CONFIGS[("gpu", "default-trt")].instance_group
    assert [g.kind for g in groups] == [mc.ModelInstanceGroup.KIND_GPU]


def _changed(model: str, edit: str) -> mc.ModelConfig:
    config = mc.ModelConfig()
    config.CopyFrom(CONFIGS[("gpu", model)])
    text_format.Merge(edit, config)
    return config


@pytest.mark.parametrize(
    ("model", "edit", "problem"),
    [
        ("default-xgb", 'input { name: "x" data_type: TYPE_FP32 dims: 4 }', "one input"),
        ("default-xgb", 'parameters { key: "algo" value { string_value: "TREE_REORG" } }',
         "sparse storage needs algo NAIVE"),
        ("default-xgb", 'parameters { key: "storage_type" value { string_value: "COMPACT" } }',
         "storage_type is 'COMPACT'"),
        ("income-lgbm", 'parameters { key: "predict_proba" value { string_value: "true" } }',
         "predict_proba needs output_class true"),
        ("income-lgbm", "max_batch_size: 0", "needs max_batch_size > 0"),
        ("default-torch", 'output { name: "extra" data_type: TYPE_FP32 dims: 1 }',
         "'extra' is not named <name>__<index>"),
        ("default-trt", 'instance_group { name: "cpu" kind: KIND_CPU count: 1 }',
         "TensorRT plans run on GPUs only"),
    ],
)  # fmt: skip
def test_backend_rules_refuse_what_the_backend_refuses(model: str, edit: str, problem: str) -> None:
    config = _changed(model, edit)
    assert backend_problems(CONFIGS[("gpu", model)]) == []
    found = load_time_problems(config, model, [1], gpus_per_replica=1)
    assert any(problem in p for p in found), found


def test_fil_without_model_type_is_refused() -> None:
    config = _changed("default-xgb", "")
    del config.parameters["model_type"]
    assert "FIL parameter model_type is not set" in backend_problems(config)


def test_local_tools_refuse_formats_the_local_triton_cannot_run() -> None:
    with pytest.raises(NotServable, match="serves a savedmodel model, which the local Triton"):
        model_ir(SPECS, "default-tf", "local")
    # Tree and TorchScript models are served locally (torch from the `torch` extra).
    for name, model_format in (("default-xgb", "xgboost"), ("default-torch", "torchscript")):
        ir, _ = model_ir(SPECS, name, "local")
        assert ir.format.name == model_format
