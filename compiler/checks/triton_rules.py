"""What Triton checks when it loads a model, and its protobuf does not.

Rendered configs pass through here before they are written, so a config that
Triton would refuse never reaches a cluster. The rules follow Triton's own
load-time validation (model_config_utils in the Triton server).
"""

from __future__ import annotations

from collections.abc import Iterable

from tritonclient.grpc import model_config_pb2 as mc


def load_time_problems(
    config: mc.ModelConfig, folder: str, versions: Iterable[int], gpus_per_replica: int
) -> list[str]:
    """Why Triton would refuse `config` in `folder` with these version folders."""
    problems: list[str] = []
    available = set(versions)
    if config.name != folder:
        problems.append(f"model name {config.name!r} differs from its folder {folder!r}")
    if not config.platform and not config.backend:
        problems.append("neither platform nor backend is set")
    if config.max_batch_size < 0:
        problems.append(f"max_batch_size {config.max_batch_size} is negative")
    if config.HasField("dynamic_batching"):
        if config.max_batch_size == 0:
            problems.append("dynamic batching needs max_batch_size > 0")
        for size in config.dynamic_batching.preferred_batch_size:
            if size > config.max_batch_size:
                problems.append(
                    f"preferred batch size {size} is above max_batch_size {config.max_batch_size}"
                )
    for side, tensors in (("input", config.input), ("output", config.output)):
        if side == "input" and not tensors:
            problems.append("the model has no inputs")
        for tensor in tensors:
            if tensor.data_type == mc.TYPE_INVALID:
                problems.append(f"{side} {tensor.name!r} has no data type")
            if not tensor.dims and not tensor.HasField("reshape"):
                problems.append(f"{side} {tensor.name!r} has no dims")
            for dim in tensor.dims:
                if dim < -1 or dim == 0:
                    problems.append(f"{side} {tensor.name!r} has dimension {dim}; use -1 or >= 1")
    policy = config.version_policy
    if policy.HasField("specific"):
        wanted = set(policy.specific.versions)
        if not wanted:
            problems.append("the specific version policy lists no version")
        missing = sorted(wanted - available)
        if missing:
            problems.append(
                f"version folder(s) {missing} required by the version policy are absent"
            )
    elif not available:
        problems.append("no version folder to load")
    for group in config.instance_group:
        if group.kind == mc.ModelInstanceGroup.KIND_GPU:
            if gpus_per_replica < 1:
                problems.append(
                    f"instance group {group.name!r} is KIND_GPU but no GPU is available"
                )
            for gpu in group.gpus:
                if gpu >= gpus_per_replica:
                    problems.append(f"instance group {group.name!r} uses GPU {gpu}, not present")
        if group.count < 1:
            problems.append(f"instance group {group.name!r} has count {group.count}")
    for warmup in config.model_warmup:
        if config.max_batch_size and warmup.batch_size > config.max_batch_size:
            problems.append(
                f"warm-up {warmup.name!r} batch size {warmup.batch_size} is above max_batch_size"
            )
        declared = {t.name for t in config.input}
        for name in warmup.inputs:
            if name not in declared:
                problems.append(f"warm-up {warmup.name!r} feeds unknown input {name!r}")
    return problems
