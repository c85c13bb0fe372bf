"""The Triton target: types, batch dimensions, local vs cluster, and Triton's load-time rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from compiler.api import build
from compiler.checks.triton_rules import load_time_problems
from compiler.diagnostics import render
from compiler.ir import InstanceGroupIR, ModelIR
from compiler.ir.serving import DynamicBatchingIR, OptimizationIR, QueuePolicyIR, TensorRTIR
from compiler.targets import triton
from runtime.contract.signature import ONNX_DTYPES, Tensor

GPU = mc.ModelInstanceGroup.KIND_GPU
CPU = mc.ModelInstanceGroup.KIND_CPU

# GUIDE section 4: ONNX element type -> Triton data type.
ONNX_TO_TRITON = {
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
    "tensor(float16)": "TYPE_FP16",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32",
    "tensor(uint64)": "TYPE_UINT64",
    "tensor(bool)": "TYPE_BOOL",
    "tensor(string)": "TYPE_STRING",
}
UNSUPPORTED = ["tensor(bfloat16)", "seq(tensor(float))", "seq(map(int64,tensor(float)))"]


SpecFiles = Callable[..., dict[str, str]]
WriteTree = Callable[..., Path]


@pytest.fixture(scope="module")
def models(
    tmp_path_factory: pytest.TempPathFactory, spec_files: SpecFiles, write_tree: WriteTree
) -> dict[str, ModelIR]:
    """The IR of `alpha` in a local and a cluster environment (see tests/conftest.py)."""
    specs = write_tree(tmp_path_factory.mktemp("tree") / "specs", spec_files(["alpha"]))
    result = build(specs)
    assert result.ok, render(result.diagnostics, "text")
    return {m.environment.name: m for m in result.resolution.models}


def with_serving(model: ModelIR, **changes: Any) -> ModelIR:
    return dataclasses.replace(model, serving=dataclasses.replace(model.serving, **changes))


def on_gpus(model: ModelIR, gpus: int, *groups: InstanceGroupIR) -> ModelIR:
    resources = dataclasses.replace(model.serving.resources, gpus=gpus)
    return dataclasses.replace(
        with_serving(model, resources=resources), instance_groups=tuple(groups)
    )


def with_warmup(model: ModelIR, **changes: Any) -> ModelIR:
    warmup = model.serving.warmup
    assert warmup is not None
    return with_serving(model, warmup=dataclasses.replace(warmup, **changes))


def tensor(config: mc.ModelConfig, name: str) -> Any:
    return next(t for t in [*config.input, *config.output] if t.name == name)


# --- types ---------------------------------------------------------------------------


@pytest.mark.parametrize("onnx_type", sorted(ONNX_TO_TRITON))
def test_onnx_type_maps_to_triton_type(onnx_type: str) -> None:
    kiln_type = ONNX_DTYPES[onnx_type]
    assert mc.DataType.Name(triton.TRITON_TYPES[kiln_type]) == ONNX_TO_TRITON[onnx_type]


@pytest.mark.parametrize("onnx_type", UNSUPPORTED)
def test_types_the_onnxruntime_backend_cannot_serve_have_no_mapping(onnx_type: str) -> None:
    assert onnx_type not in ONNX_DTYPES


def test_every_kiln_dtype_has_a_triton_type() -> None:
    assert set(triton.TRITON_TYPES) == set(ONNX_DTYPES.values())


def _cast_model(path: Path, extra_output: str = "") -> None:
    """An ONNX model casting its fp32 input `x` to every type Triton serves."""
    pytest.importorskip("onnx", reason="building test models needs onnx (the train extra)")
    from onnx import TensorProto, helper

    types = {name.lower(): getattr(TensorProto, name) for name in _ONNX_ENUMS}
    if extra_output == "bfloat16":
        types["bfloat16"] = TensorProto.BFLOAT16
    nodes = [helper.make_node("Cast", ["x"], [name], to=t) for name, t in types.items()]
    outputs = [helper.make_tensor_value_info(n, t, [None, 3]) for n, t in types.items()]
    if extra_output == "sequence":
        nodes.append(helper.make_node("SequenceConstruct", ["x"], ["sequence"]))
        outputs.append(helper.make_tensor_sequence_value_info("sequence", TensorProto.FLOAT, None))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph(nodes, "casts", [x], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


_ONNX_ENUMS = ["FLOAT", "DOUBLE", "FLOAT16", "INT8", "INT16", "INT32", "INT64", "UINT8"]
_ONNX_ENUMS += ["UINT16", "UINT32", "UINT64", "BOOL", "STRING"]
_TRITON_OF_ONNX_ENUM = {
    "float": "TYPE_FP32",
    "double": "TYPE_FP64",
    "float16": "TYPE_FP16",
    "bool": "TYPE_BOOL",
    "string": "TYPE_STRING",
    **{f"{s}int{n}": f"TYPE_{s.upper()}INT{n}" for s in ("", "u") for n in (8, 16, 32, 64)},
}


def _local_onnx_tree(root: Path, spec_files: SpecFiles, write_tree: WriteTree) -> Path:
    """A tree whose model has no declared signature: it is read from model.onnx."""
    files = spec_files(["casts"])
    model = files["models/casts.yaml"]
    start = model.index("  signature:")
    files["models/casts.yaml"] = model[:start] + model[model.index("  versions:") :]
    files["project.yaml"] = files["project.yaml"].replace(
        "{models: s3://unit-models, data: s3://unit-data}",
        "{models: specs/artifacts, data: .kiln/data}",
    )
    return write_tree(root / "specs", files)


def test_types_read_from_an_onnx_file_render_as_triton_types(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    specs = _local_onnx_tree(tmp_path, spec_files, write_tree)
    _cast_model(specs / "artifacts" / "casts" / "1" / "model.onnx")
    result = build(specs)
    assert result.ok, render(result.diagnostics, "text")
    artifact = next(a for a in result.artifacts if a.path == "local/casts/triton/config.pbtxt")
    config = triton.parse(artifact.content)
    rendered = {t.name: mc.DataType.Name(t.data_type) for t in config.output}
    assert rendered == _TRITON_OF_ONNX_ENUM
    assert [list(t.dims) for t in config.output] == [[3]] * len(_TRITON_OF_ONNX_ENUM)


@pytest.mark.parametrize("extra", ["bfloat16", "sequence"])
def test_unsupported_onnx_types_are_diagnosed(
    tmp_path: Path, extra: str, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    specs = _local_onnx_tree(tmp_path, spec_files, write_tree)
    _cast_model(specs / "artifacts" / "casts" / "1" / "model.onnx", extra)
    result = build(specs)
    codes = {d.code for d in result.diagnostics}
    assert "KILN1706" in codes, render(result.diagnostics, "text")
    assert any(extra in d.message for d in result.diagnostics if d.code == "KILN1706")


# --- batch dimension -------------------------------------------------------------------


def test_batching_dims_leave_out_the_batch_dimension(models: dict[str, ModelIR]) -> None:
    config = triton.build_config(models["staging"])
    assert config.max_batch_size == 8
    assert list(tensor(config, "x").dims) == [3]  # shape [-1, 3]
    assert list(tensor(config, "probabilities").dims) == [2]  # shape [-1, 2]
    for name in ("x", "s", "probabilities"):
        assert not tensor(config, name).HasField("reshape")


def test_a_batch_only_tensor_gets_dims_1_and_an_empty_reshape(
    models: dict[str, ModelIR],
) -> None:
    label = tensor(triton.build_config(models["staging"]), "label")  # shape [-1]
    assert list(label.dims) == [1]
    assert label.HasField("reshape")
    assert list(label.reshape.shape) == []
    assert 'name: "label"' in triton.serialize(triton.build_config(models["staging"]))


def test_without_batching_dims_keep_every_dimension(models: dict[str, ModelIR]) -> None:
    model = with_serving(models["staging"], max_batch_size=0, dynamic_batching=None)
    model = with_serving(model, warmup=None)
    config = triton.build_config(model)
    assert config.max_batch_size == 0
    assert list(tensor(config, "x").dims) == [-1, 3]
    assert list(tensor(config, "label").dims) == [-1]
    assert not tensor(config, "label").HasField("reshape")
    assert not config.HasField("dynamic_batching")
    assert load_time_problems(config, "alpha", [1], 0) == []


def test_warmup_has_fixed_dims_and_batch_size_1_without_batching(
    models: dict[str, ModelIR],
) -> None:
    batched = triton.build_config(models["staging"])
    assert [(w.name, w.batch_size) for w in batched.model_warmup] == [
        ("batch-1", 1),
        ("batch-8", 8),
    ]
    assert list(batched.model_warmup[0].inputs["x"].dims) == [3]
    single = with_serving(models["staging"], max_batch_size=0, dynamic_batching=None)
    config = triton.build_config(with_warmup(single, batch_sizes=(1,)))
    assert [w.batch_size for w in config.model_warmup] == [1]
    assert list(config.model_warmup[0].inputs["x"].dims) == [1, 3]  # -1 becomes 1


def test_random_warmup_data_except_for_strings(models: dict[str, ModelIR]) -> None:
    config = triton.build_config(with_warmup(models["staging"], data="random"))
    inputs = config.model_warmup[0].inputs
    assert inputs["x"].WhichOneof("input_data_type") == "random_data"
    assert inputs["s"].WhichOneof("input_data_type") == "zero_data"


# --- local vs cluster ------------------------------------------------------------------


def test_local_uses_the_python_backend_on_cpu(models: dict[str, ModelIR]) -> None:
    gpu_model = on_gpus(
        models["local"], 2, InstanceGroupIR("gpu", 2, (0,)), InstanceGroupIR("gpu", 1, (1,))
    )
    tensorrt = OptimizationIR(TensorRTIR("fp16", None))
    config = triton.build_config(with_serving(gpu_model, optimization=tensorrt))
    assert config.backend == "python"
    assert config.platform == ""
    assert [(g.name, g.kind, g.count, list(g.gpus)) for g in config.instance_group] == [
        ("alpha-cpu", CPU, 3, [])
    ]
    assert not config.HasField("optimization")
    assert load_time_problems(config, "alpha", [1], 0) == []


def test_cluster_uses_onnxruntime_with_gpu_groups(models: dict[str, ModelIR]) -> None:
    model = on_gpus(
        models["staging"],
        2,
        InstanceGroupIR("gpu", 2, (0,)),
        InstanceGroupIR("gpu", 1, (0, 1)),
        InstanceGroupIR("cpu", 3, ()),
    )
    config = triton.build_config(model)
    assert config.platform == "onnxruntime_onnx"
    assert config.backend == ""
    assert [(g.name, g.kind, g.count, list(g.gpus)) for g in config.instance_group] == [
        ("alpha-gpu-0", GPU, 2, [0]),
        ("alpha-gpu-1", GPU, 1, [0, 1]),
        ("alpha-cpu-2", CPU, 3, []),
    ]
    assert load_time_problems(config, "alpha", [1], 2) == []


def test_default_instance_group_uses_every_gpu_of_the_replica(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    files = spec_files(["alpha"])
    files["models/alpha.yaml"] = files["models/alpha.yaml"].replace(
        "    max_batch_size: 8\n", "    max_batch_size: 8\n    resources: {gpus: 2}\n"
    )
    # The local environment has no GPUs: the model says so in its overlay.
    files["models/alpha.yaml"] += "  environments: {local: {serving: {resources: {gpus: 0}}}}\n"
    result = build(write_tree(tmp_path / "specs", files))
    assert result.ok, render(result.diagnostics, "text")
    artifact = next(a for a in result.artifacts if a.path == "staging/alpha/triton/config.pbtxt")
    groups = triton.parse(artifact.content).instance_group
    assert [(g.kind, g.count, list(g.gpus)) for g in groups] == [(GPU, 1, [0, 1])]


def test_tensorrt_only_with_gpu_groups(models: dict[str, ModelIR]) -> None:
    tensorrt = OptimizationIR(TensorRTIR("int8", max_workspace_size_bytes=1 << 30))
    cpu_only = with_serving(models["staging"], optimization=tensorrt)
    assert not triton.build_config(cpu_only).HasField("optimization")
    gpu = on_gpus(cpu_only, 1, InstanceGroupIR("gpu", 1, (0,)))
    accelerators = triton.build_config(gpu).optimization.execution_accelerators
    [accelerator] = accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert dict(accelerator.parameters) == {
        "precision_mode": "INT8",
        "max_workspace_size_bytes": "1073741824",
    }
    assert not accelerators.cpu_execution_accelerator


def test_version_policy_lists_only_the_served_version(models: dict[str, ModelIR]) -> None:
    model = models["staging"]
    older = dataclasses.replace(model.served[0], version=3)
    config = triton.build_config(dataclasses.replace(model, served=(older,)))
    assert list(config.version_policy.specific.versions) == [3]
    assert load_time_problems(config, "alpha", [1, 3], 0) == []
    assert load_time_problems(config, "alpha", [1], 0) != []


def test_dynamic_batching_fields(models: dict[str, ModelIR]) -> None:
    batching = DynamicBatchingIR(
        max_queue_delay_us=300,
        preferred_batch_size=(4, 8),
        preserve_ordering=False,
        priority_levels=2,
        default_priority_level=1,
        default_queue_policy=QueuePolicyIR("delay", 7, False, 0),
    )
    config = triton.build_config(with_serving(models["staging"], dynamic_batching=batching))
    rendered = config.dynamic_batching
    assert rendered.max_queue_delay_microseconds == 300
    assert list(rendered.preferred_batch_size) == [4, 8]
    assert (rendered.priority_levels, rendered.default_priority_level) == (2, 1)
    assert rendered.default_queue_policy.timeout_action == mc.ModelQueuePolicy.DELAY
    assert rendered.default_queue_policy.default_timeout_microseconds == 7
    nothing_set = DynamicBatchingIR(0, (), False, None, None, None)
    empty = with_serving(models["staging"], dynamic_batching=nothing_set)
    text = triton.serialize(triton.build_config(empty))
    assert "dynamic_batching {\n}" in text  # NVIDIA's advice: start with an empty block


def test_a_config_triton_would_refuse_is_a_diagnostic(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    files = spec_files(["alpha"])
    files["models/alpha.yaml"] = files["models/alpha.yaml"].replace(
        "{max_queue_delay_us: 100}", "{max_queue_delay_us: 100, priority_levels: 2}"
    )
    result = build(write_tree(tmp_path / "specs", files))
    assert not result.ok
    assert result.artifacts == []
    assert any("priority" in d.message for d in result.diagnostics), render(
        result.diagnostics, "text"
    )


# --- Triton's load-time rules ----------------------------------------------------------

VALID = """
name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy { specific { versions: 2 } }
input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
output { name: "label" data_type: TYPE_INT64 dims: [ 1 ] reshape { } }
instance_group { name: "m-gpu-0" kind: KIND_GPU count: 1 gpus: [ 0 ] }
dynamic_batching { preferred_batch_size: [ 4 ] }
model_warmup {
  name: "w" batch_size: 1
  inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 3 ] zero_data: true } }
}
"""


def valid() -> mc.ModelConfig:
    return text_format.Parse(VALID, mc.ModelConfig())


def test_the_valid_config_passes() -> None:
    assert load_time_problems(valid(), "m", [2], 1) == []


Mutation = Callable[[mc.ModelConfig], Any]


def _set(field: str, value: Any) -> Mutation:
    def mutate(config: mc.ModelConfig) -> None:
        target: Any = config
        *parents, last = field.split(".")
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, last, value)

    return mutate


def _feed(name: str) -> Mutation:
    def mutate(config: mc.ModelConfig) -> None:
        config.model_warmup[0].inputs[name].zero_data = True

    return mutate


def _on_cpu(config: mc.ModelConfig) -> None:
    config.instance_group[0].kind = CPU  # keeps its `gpus: [0]`


def _all(*mutations: Mutation) -> Mutation:
    def mutate(config: mc.ModelConfig) -> None:
        for mutation in mutations:
            mutation(config)

    return mutate


BROKEN: list[tuple[str, Mutation, str, list[int], int]] = [
    ("name-differs", _set("name", "other"), "differs from its folder", [2], 1),
    ("negative-batch", _set("max_batch_size", -1), "is negative", [2], 1),
    ("preferred-above-max", _set("max_batch_size", 2), "preferred batch size 4", [2], 1),
    (
        "batching-without-batch",
        _all(
            _set("max_batch_size", 0),
            lambda c: c.dynamic_batching.ClearField("preferred_batch_size"),
        ),
        "dynamic batching needs max_batch_size > 0",
        [2],
        1,
    ),
    ("input-without-dims", lambda c: c.input[0].ClearField("dims"), "has no dims", [2], 1),
    ("reshape-without-dims", lambda c: c.output[0].ClearField("dims"), "has no dims", [2], 1),
    ("dim-zero", lambda c: c.input[0].dims.append(0), "dimension 0", [2], 1),
    ("dim-below-minus-one", lambda c: c.input[0].dims.append(-2), "dimension -2", [2], 1),
    ("absent-version", lambda c: None, "version folder(s) [2]", [1], 1),
    ("no-version-folder", lambda c: c.ClearField("version_policy"), "no version folder", [], 1),
    ("gpu-without-gpus", lambda c: None, "KIND_GPU but no GPU", [2], 0),
    ("gpu-out-of-range", lambda c: c.instance_group[0].gpus.append(1), "uses GPU 1", [2], 1),
    ("warmup-unknown-input", _feed("nope"), "feeds unknown input 'nope'", [2], 1),
    # Rules of Triton's ValidateModelConfig beyond the list in the guide:
    ("default-priority", _set("dynamic_batching.priority_levels", 2), "default priority", [2], 1),
    (
        "ordering-with-priorities",
        _all(
            _set("dynamic_batching.priority_levels", 2),
            _set("dynamic_batching.default_priority_level", 1),
            _set("dynamic_batching.preserve_ordering", True),
        ),
        "only one priority level",
        [2],
        1,
    ),
    (
        "ordering-with-delay",
        _all(
            _set("dynamic_batching.preserve_ordering", True),
            _set("dynamic_batching.default_queue_policy.timeout_action", mc.ModelQueuePolicy.DELAY),
            _set("dynamic_batching.default_queue_policy.default_timeout_microseconds", 5),
        ),
        "DELAY",
        [2],
        1,
    ),
    (
        "empty-reshape-without-batching",
        _all(_set("max_batch_size", 0), lambda c: c.ClearField("dynamic_batching")),
        "empty reshape",
        [2],
        1,
    ),
    ("reshape-size", lambda c: c.output[0].reshape.shape.append(2), "dims and reshape", [2], 1),
    ("no-instance-group", lambda c: c.ClearField("instance_group"), "no instance group", [2], 1),
    ("cpu-with-gpus", _on_cpu, "not KIND_GPU but lists GPUs", [2], 1),
    (
        "warmup-variable-dim",
        lambda c: c.model_warmup[0].inputs["x"].dims.insert(0, -1),
        "variable dimension",
        [2],
        1,
    ),
    (
        "warmup-missing-input",
        lambda c: c.model_warmup[0].inputs.__delitem__("x"),
        "does not feed input(s) x",
        [2],
        1,
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected", "versions", "gpus"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_load_time_rules_reject(
    mutate: Mutation, expected: str, versions: list[int], gpus: int
) -> None:
    config = valid()
    mutate(config)
    problems = load_time_problems(config, "m", versions, gpus)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "text",
    [
        'name: "m"\nmax_batch_sizes: 8\n',  # unknown field
        'name: "m"\ninput { name: "x" data_type: TYPE_FLOAT128 dims: 1 }\n',  # bad enum value
        'name: "m"\ninstance_group { kind: KIND_TPU }\n',
    ],
    ids=["unknown-field", "bad-data-type", "bad-kind"],
)
def test_protobuf_text_rejects_unknown_fields_and_bad_enums(text: str) -> None:
    with pytest.raises(text_format.ParseError):
        triton.parse(text)


def test_rendered_config_round_trips(models: dict[str, ModelIR]) -> None:
    for model in models.values():
        config = triton.build_config(model)
        assert triton.parse(triton.serialize(config)) == config


def test_tensor_ir_shape_is_kept(models: dict[str, ModelIR]) -> None:
    assert models["staging"].inputs[0] == Tensor("x", "fp32", (-1, 3))
