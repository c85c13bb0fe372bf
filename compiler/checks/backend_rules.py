"""What each Triton backend checks when it loads a model, beyond Triton's core rules.

Run on the rendered `ModelConfig` like `triton_rules`: the spec rules report these
problems first, at the spec line at fault; this is the last guard before a config
reaches a cluster. Facts: fil_backend docs/model_config.md (FIL), Triton's pytorch
backend README (output names `<name>__<index>`), the TensorRT backend (GPU instances
only).
"""

from __future__ import annotations

import re

from tritonclient.grpc import model_config_pb2 as mc

from runtime.contract.formats import FIL_INPUT, FIL_MODEL_FILES, FIL_OUTPUT

FIL_CHOICES = {
    "model_type": tuple(FIL_MODEL_FILES),
    "output_class": ("true", "false"),
    "predict_proba": ("true", "false"),
    "storage_type": ("AUTO", "DENSE", "SPARSE", "SPARSE8"),
    "algo": ("ALGO_AUTO", "NAIVE", "TREE_REORG", "BATCH_TREE_REORG"),
}
_INDEXED = re.compile(r"^.+__\d+$")


def backend_problems(config: mc.ModelConfig) -> list[str]:
    if config.backend == "fil":
        return _fil(config)
    if config.platform == "pytorch_libtorch":
        return [
            f"output {o.name!r} is not named <name>__<index>"
            for o in config.output
            if not _INDEXED.match(o.name)
        ]
    if config.platform == "tensorrt_plan":
        return [
            f"instance group {g.name!r} is not KIND_GPU; TensorRT plans run on GPUs only"
            for g in config.instance_group
            if g.kind != mc.ModelInstanceGroup.KIND_GPU
        ]
    return []


def _fil(config: mc.ModelConfig) -> list[str]:
    problems = []
    if config.max_batch_size < 1:
        problems.append("the FIL backend needs max_batch_size > 0")
    for side, tensors, name in (
        ("input", config.input, FIL_INPUT),
        ("output", config.output, FIL_OUTPUT),
    ):
        shapes = [(t.name, t.data_type, len(t.dims)) for t in tensors]
        if shapes != [(name, mc.TYPE_FP32, 1)]:
            problems.append(f"FIL takes one {side} {name!r} of TYPE_FP32 and one dimension")
    parameters = {k: v.string_value for k, v in config.parameters.items()}
    for key, allowed in FIL_CHOICES.items():
        value = parameters.get(key)
        if value is not None and value not in allowed:
            problems.append(f"FIL parameter {key} is {value!r}, not one of {', '.join(allowed)}")
    if "model_type" not in parameters:
        problems.append("FIL parameter model_type is not set")
    sparse = parameters.get("storage_type") in ("SPARSE", "SPARSE8")
    if sparse and parameters.get("algo") not in (None, "ALGO_AUTO", "NAIVE"):
        problems.append("FIL sparse storage needs algo NAIVE")
    if parameters.get("predict_proba") == "true" and parameters.get("output_class") != "true":
        problems.append("FIL predict_proba needs output_class true")
    return problems
