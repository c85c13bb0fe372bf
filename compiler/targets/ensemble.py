"""Triton ensemble configs: the ensemble's own `config.pbtxt` (platform "ensemble",
its steps under `ensemble_scheduling`) and one per step, each built as a ModelConfig.

The ensemble has no instances or batching queue of its own (Triton refuses both on an
ensemble); its steps carry the model's instance groups and dynamic batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tritonclient.grpc import model_config_pb2 as mc

from compiler.ir import EnsembleStepIR, ModelIR
from compiler.targets import triton

ENSEMBLE_PLATFORM = "ensemble"
STEPS_FOLDER = "steps"  # generated/<env>/<model>/triton/steps/<step model>/config.pbtxt


def config_key(step: str) -> str:
    """A step config's key in the serving ConfigMap (and file under its mount): the step's
    Triton name, a DNS label, a dot and another DNS label, fits [-._a-zA-Z0-9]+ and
    cannot be another key (the model's own `config.pbtxt` has no dot before it)."""
    return f"{step}.{triton.CONFIG_FILE}"


class Link(Protocol):
    """A step as the ensemble's scheduling names it: model, and its tensors' wiring."""

    @property
    def name(self) -> str: ...
    @property
    def input_map(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def output_map(self) -> tuple[tuple[str, str], ...]: ...


def scheduled_config(model: ModelIR, version: int, steps: Sequence[Link]) -> mc.ModelConfig:
    """The ensemble `<model>`: the model's tensors, its steps run by Triton's scheduler."""
    batching = model.serving.max_batch_size > 0
    config = mc.ModelConfig(
        name=model.name, platform=ENSEMBLE_PLATFORM, max_batch_size=model.serving.max_batch_size
    )
    config.version_policy.specific.versions.append(version)
    triton.add_tensors(config, model.inputs, model.outputs, batching)
    for step in steps:
        scheduled = config.ensemble_scheduling.step.add(model_name=step.name, model_version=version)
        for key, value in step.input_map:
            scheduled.input_map[key] = value
        for key, value in step.output_map:
            scheduled.output_map[key] = value
    return config


def step_config(model: ModelIR, step: EnsembleStepIR) -> mc.ModelConfig:
    """A step as Triton serves it: ONNX through the python backend's adapter locally,
    onnxruntime in a cluster; a python step by the python backend everywhere."""
    assert model.ensemble is not None
    batching = step.max_batch_size > 0
    config = mc.ModelConfig(name=step.name, max_batch_size=step.max_batch_size)
    if step.format.name == "onnx" and not model.is_local:
        config.platform = triton.ONNX_PLATFORM
    else:
        config.backend = triton.LOCAL_BACKEND
    if step.format.name != "onnx":
        config.default_model_filename = step.format.model_file
    config.version_policy.specific.versions.append(model.ensemble.version)
    triton.add_tensors(config, step.inputs, step.outputs, batching)
    if batching and model.serving.dynamic_batching is not None:
        config.dynamic_batching.SetInParent()
        config.dynamic_batching.max_queue_delay_microseconds = (
            model.serving.dynamic_batching.max_queue_delay_us
        )
    # Steps run on the CPU: pre- and post-processing do, and the local Triton has no GPU.
    config.instance_group.add(name=f"{step.name}-cpu", kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    return config
