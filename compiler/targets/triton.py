"""Triton model configuration (`config.pbtxt`), built as Triton's own protobuf message.

Cluster environments get the platform or backend of the served version's format
(runtime/contract/formats.py) with GPU or CPU instance groups, and TensorRT for
ONNX when asked; a model in the `local` environment gets what a CPU-only Triton
with the python backend loads (Kiln's adapter, or the python model itself), so the
same spec serves in both places.
"""

from __future__ import annotations

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from compiler.ir import ModelIR
from runtime.contract import capture as capture_contract
from runtime.contract.formats import FORMATS, LOCAL_FILE_PARAMETER, LOCAL_FORMAT_PARAMETER
from runtime.contract.signature import Tensor

TRITON_TYPES = {
    "bool": mc.TYPE_BOOL,
    "uint8": mc.TYPE_UINT8,
    "uint16": mc.TYPE_UINT16,
    "uint32": mc.TYPE_UINT32,
    "uint64": mc.TYPE_UINT64,
    "int8": mc.TYPE_INT8,
    "int16": mc.TYPE_INT16,
    "int32": mc.TYPE_INT32,
    "int64": mc.TYPE_INT64,
    "fp16": mc.TYPE_FP16,
    "fp32": mc.TYPE_FP32,
    "fp64": mc.TYPE_FP64,
    "string": mc.TYPE_STRING,
}
ONNX_PLATFORM = "onnxruntime_onnx"
LOCAL_BACKEND = "python"
CONFIG_FILE = "config.pbtxt"


def _dims(tensor: Tensor, batching: bool) -> list[int]:
    # With batching Triton adds the batch dimension itself: dims leave it out.
    dims = list(tensor.shape[1:] if batching else tensor.shape)
    return dims or [1]


def _inputs(model: ModelIR, config: mc.ModelConfig, batching: bool) -> None:
    add_tensors(config, model.inputs, model.outputs, batching)


def add_tensors(
    config: mc.ModelConfig,
    inputs: tuple[Tensor, ...],
    outputs: tuple[Tensor, ...],
    batching: bool,
) -> None:
    """A model's inputs and outputs as Triton declares them."""
    for tensors, field in ((inputs, config.input), (outputs, config.output)):
        for tensor in tensors:
            entry = field.add(
                name=tensor.name, data_type=TRITON_TYPES[tensor.dtype], dims=_dims(tensor, batching)
            )
            if batching and len(tensor.shape) == 1:
                # A tensor that is only the batch dimension: Triton wants dims [1]
                # and an empty reshape, or it expects shape [batch, 1].
                entry.reshape.SetInParent()


def _dynamic_batching(model: ModelIR, config: mc.ModelConfig) -> None:
    spec = model.serving.dynamic_batching
    if spec is None:
        return
    batching = config.dynamic_batching
    batching.SetInParent()  # `dynamic_batching { }` is meaningful even when empty
    batching.max_queue_delay_microseconds = spec.max_queue_delay_us
    batching.preferred_batch_size.extend(spec.preferred_batch_size)
    batching.preserve_ordering = spec.preserve_ordering
    if spec.priority_levels is not None:
        batching.priority_levels = spec.priority_levels
    if spec.default_priority_level is not None:
        batching.default_priority_level = spec.default_priority_level
    policy = spec.default_queue_policy
    if policy is not None:
        queue = batching.default_queue_policy
        queue.timeout_action = (
            mc.ModelQueuePolicy.DELAY
            if policy.timeout_action == "delay"
            else mc.ModelQueuePolicy.REJECT
        )
        queue.default_timeout_microseconds = policy.default_timeout_us
        queue.allow_timeout_override = policy.allow_timeout_override
        queue.max_queue_size = policy.max_queue_size


def _instance_groups(model: ModelIR, config: mc.ModelConfig) -> None:
    if model.is_local:
        # The local Triton runs the CPU groups of a model (a GPU there is refused,
        # KILN1419) as one group: one CPU instance per declared instance.
        count = sum(g.count for g in model.instance_groups)
        config.instance_group.add(
            name=f"{model.name}-cpu", kind=mc.ModelInstanceGroup.KIND_CPU, count=count
        )
        return
    for index, group in enumerate(model.instance_groups):
        if group.kind == "gpu":
            config.instance_group.add(
                name=f"{model.name}-gpu-{index}",
                kind=mc.ModelInstanceGroup.KIND_GPU,
                count=group.count,
                gpus=list(group.gpus),
            )
        else:
            config.instance_group.add(
                name=f"{model.name}-cpu-{index}",
                kind=mc.ModelInstanceGroup.KIND_CPU,
                count=group.count,
            )


def _warmup(model: ModelIR, config: mc.ModelConfig, batching: bool) -> None:
    spec = model.serving.warmup
    if spec is None:
        return
    for size in spec.batch_sizes:
        warmup = config.model_warmup.add(name=f"batch-{size}", batch_size=size if batching else 1)
        for tensor in model.inputs:
            sample = warmup.inputs[tensor.name]
            sample.data_type = TRITON_TYPES[tensor.dtype]
            sample.dims.extend(max(d, 1) for d in _dims(tensor, batching))
            # Random bytes are not valid strings for most models: strings warm with zeros.
            if spec.data == "random" and tensor.dtype != "string":
                sample.random_data = True
            else:
                sample.zero_data = True


def _optimization(model: ModelIR, config: mc.ModelConfig) -> None:
    optimization = model.serving.optimization
    has_gpu = any(g.kind == "gpu" for g in model.instance_groups)
    if model.is_local or optimization is None or optimization.tensorrt is None or not has_gpu:
        return
    tensorrt = optimization.tensorrt
    accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(
        name="tensorrt"
    )
    accelerator.parameters["precision_mode"] = tensorrt.precision.upper()
    if tensorrt.max_workspace_size_bytes is not None:
        accelerator.parameters["max_workspace_size_bytes"] = str(tensorrt.max_workspace_size_bytes)


def _runner(model: ModelIR, config: mc.ModelConfig) -> None:
    """Platform or backend, the file Triton loads, and the backend's parameters."""
    if model.is_local and FORMATS[model.format.name].local:
        _local_runner(model, config)
        return
    # A format the local Triton cannot run keeps its cluster runner there: it is
    # compiled and checked, and `kiln serve` says why it is not served.
    if model.format.name == "onnx":
        config.platform = ONNX_PLATFORM
        return
    runner = FORMATS[model.format.name]
    if runner.platform:
        config.platform = runner.platform
    else:
        config.backend = runner.backend
    # Named even where it is Triton's default: the assemble step reads it back.
    config.default_model_filename = model.format.model_file
    _parameters(model, config)


def _local_runner(model: ModelIR, config: mc.ModelConfig) -> None:
    """The local Triton has the python backend alone (no onnxruntime, FIL or libtorch
    outside NVIDIA's images): every format runs there through it. ONNX and tree models
    through Kiln's adapter, which calls the format's own library; a python model is a
    python-backend model itself. The cluster backend's parameters are kept, because the
    adapter answers as that backend would (FIL's output_class, threshold, predict_proba)."""
    config.backend = LOCAL_BACKEND
    name = model.format.name
    if FORMATS[name].local == "native":
        config.default_model_filename = model.format.model_file
        return
    if name == "onnx":
        return  # the adapter's default: model.onnx beside it
    _parameters(model, config)
    config.parameters[LOCAL_FORMAT_PARAMETER].string_value = name
    config.parameters[LOCAL_FILE_PARAMETER].string_value = model.format.model_file


def _parameters(model: ModelIR, config: mc.ModelConfig) -> None:
    for key, value in model.format.parameters:
        config.parameters[key].string_value = value


def build_config(model: ModelIR) -> mc.ModelConfig:
    """The `ModelConfig` Triton loads for this model in this environment."""
    batching = model.serving.max_batch_size > 0
    config = mc.ModelConfig(name=model.name, max_batch_size=model.serving.max_batch_size)
    _runner(model, config)
    config.version_policy.specific.versions.extend(sorted(a.version for a in model.served))
    _inputs(model, config, batching)
    _dynamic_batching(model, config)
    _instance_groups(model, config)
    _warmup(model, config, batching)
    _optimization(model, config)
    if model.capture is not None and model.is_local:
        # Read by the capture step in the python-backend adapter (docs/capture.md); a
        # parameter, not text: the spec's column names stay data in the message.
        config.parameters[capture_contract.PARAMETER].string_value = model.capture.to_json()
    return config


# Protobuf's text printer is pure Python and slow; environments and models often
# share a config, and the wire bytes (printed by the C extension) key it exactly.
_TEXTS: dict[bytes, str] = {}
_TEXTS_MAX = 10_000


def serialize(config: mc.ModelConfig) -> str:
    wire = config.SerializeToString(deterministic=True)
    text = _TEXTS.get(wire)
    if text is None:
        text = text_format.MessageToString(config, as_utf8=True)
        if len(_TEXTS) < _TEXTS_MAX:
            _TEXTS[wire] = text
    return text


def parse(text: str) -> mc.ModelConfig:
    """Parse config text the way Triton does: unknown fields and bad enums fail."""
    config = mc.ModelConfig()
    text_format.Parse(text, config)
    return config
