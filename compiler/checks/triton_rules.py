"""What Triton checks when it loads a model, and its protobuf does not.

Rendered configs pass through here before they are written, so a config that
Triton would refuse never reaches a cluster. The rules follow Triton's own
load-time validation (ValidateModelConfig and ValidateIOShape in
model_config_utils.cc, and the warm-up sample generation of model instances).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tritonclient.grpc import model_config_pb2 as mc

from compiler.checks.backend_rules import backend_problems

WILDCARD = -1
DELAY = mc.ModelQueuePolicy.DELAY


def load_time_problems(
    config: mc.ModelConfig, folder: str, versions: Iterable[int], gpus_per_replica: int
) -> list[str]:
    """Why Triton would refuse `config` in `folder` with these version folders."""
    problems: list[str] = []
    if config.name != folder:
        problems.append(f"model name {config.name!r} differs from its folder {folder!r}")
    if not config.platform and not config.backend:
        problems.append("neither platform nor backend is set")
    if config.max_batch_size < 0:
        problems.append(f"max_batch_size {config.max_batch_size} is negative")
    problems += _batching_problems(config)
    problems += _io_problems(config)
    problems += _version_problems(config, set(versions))
    problems += _group_problems(config, gpus_per_replica)
    problems += _warmup_problems(config)
    problems += backend_problems(config)
    return problems


def _batching_problems(config: mc.ModelConfig) -> list[str]:
    if not config.HasField("dynamic_batching"):
        return []
    problems: list[str] = []
    batching = config.dynamic_batching
    if config.max_batch_size == 0:
        problems.append("dynamic batching needs max_batch_size > 0")
    for size in batching.preferred_batch_size:
        if size <= 0:
            problems.append(f"preferred batch size {size} is not positive")
        elif size > config.max_batch_size:
            problems.append(
                f"preferred batch size {size} is above max_batch_size {config.max_batch_size}"
            )
    levels = batching.priority_levels
    if levels != 0 and not 1 <= batching.default_priority_level <= levels:
        problems.append(
            f"default priority level {batching.default_priority_level} is not in [1, {levels}]"
        )
    if batching.preserve_ordering:
        if levels > 1:
            problems.append("preserve_ordering allows only one priority level")
        policy = batching.default_queue_policy
        if policy.default_timeout_microseconds and policy.timeout_action == DELAY:
            problems.append("preserve_ordering cannot delay timed-out requests (DELAY)")
    return problems


def _element_count(dims: Sequence[int]) -> int:
    """Triton's GetElementCount: -1 when any dimension varies, 0 for no dimensions."""
    if any(d == WILDCARD for d in dims):
        return WILDCARD
    count = 0
    for dim in dims:
        count = dim if count == 0 else count * dim
    return count


def _trunks(dims: Sequence[int]) -> list[int]:
    """Element counts of the runs of fixed dimensions between variable ones."""
    counts, current = [], 1
    for dim in dims:
        if dim == WILDCARD:
            counts.append(current)
            current = 1
        else:
            current *= dim
    return [*counts, current]


def _reshape_fits(dims: Sequence[int], shape: Sequence[int]) -> bool:
    """Same element count, or an empty reshape (a scalar) of a one-element tensor."""
    dims_count, shape_count = _element_count(dims), _element_count(shape)
    if dims_count != shape_count:
        return shape_count == 0 and dims_count == 1
    return dims_count != WILDCARD or _trunks(dims) == _trunks(shape)


def _io_problems(config: mc.ModelConfig) -> list[str]:
    problems: list[str] = []
    for side, tensors in (("input", config.input), ("output", config.output)):
        if side == "input" and not tensors:
            problems.append("the model has no inputs")
        for tensor in tensors:
            what = f"{side} {tensor.name!r}"
            if tensor.data_type == mc.TYPE_INVALID:
                problems.append(f"{what} has no data type")
            if not tensor.dims:
                problems.append(f"{what} has no dims")
            for dim in tensor.dims:
                if dim < WILDCARD or dim == 0:
                    problems.append(f"{what} has dimension {dim}; use -1 or >= 1")
            if not tensor.HasField("reshape"):
                continue
            shape = list(tensor.reshape.shape)
            if not shape and config.max_batch_size == 0:
                problems.append(f"{what} has an empty reshape, which needs batching")
            if not _reshape_fits(tensor.dims, shape):
                problems.append(f"{what} has different sizes for dims and reshape")
    return problems


def _version_problems(config: mc.ModelConfig, available: set[int]) -> list[str]:
    policy = config.version_policy
    if not policy.HasField("specific"):
        return [] if available else ["no version folder to load"]
    wanted = set(policy.specific.versions)
    if not wanted:
        return ["the specific version policy lists no version"]
    missing = sorted(wanted - available)
    if missing:
        return [f"version folder(s) {missing} required by the version policy are absent"]
    return []


def _group_problems(config: mc.ModelConfig, gpus_per_replica: int) -> list[str]:
    problems: list[str] = []
    # An ensemble runs no instances of its own: its steps do.
    if not config.instance_group and config.platform != "ensemble":
        problems.append("the model has no instance group")
    for group in config.instance_group:
        what = f"instance group {group.name!r}"
        if group.kind == mc.ModelInstanceGroup.KIND_GPU:
            if gpus_per_replica < 1:
                problems.append(f"{what} is KIND_GPU but no GPU is available")
            for gpu in group.gpus:
                if gpu < 0 or gpu >= gpus_per_replica:
                    problems.append(f"{what} uses GPU {gpu}, not present")
        elif group.gpus:
            problems.append(f"{what} is not KIND_GPU but lists GPUs")
        if group.count < 1:
            problems.append(f"{what} has count {group.count}")
    return problems


def _warmup_problems(config: mc.ModelConfig) -> list[str]:
    problems: list[str] = []
    declared = [t.name for t in config.input]
    for warmup in config.model_warmup:
        what = f"warm-up {warmup.name!r}"
        if config.max_batch_size and warmup.batch_size > config.max_batch_size:
            problems.append(f"{what} batch size {warmup.batch_size} is above max_batch_size")
        for name, sample in sorted(warmup.inputs.items()):
            if name not in declared:
                problems.append(f"{what} feeds unknown input {name!r}")
            if _element_count(sample.dims) == WILDCARD:
                problems.append(f"{what} input {name!r} has a variable dimension")
            if sample.WhichOneof("input_data_type") is None:
                problems.append(f"{what} input {name!r} sets no data (zero, random or file)")
        unfed = [name for name in declared if name not in warmup.inputs]
        if unfed and warmup.batch_size:
            problems.append(f"{what} does not feed input(s) {', '.join(unfed)}")
    return problems
