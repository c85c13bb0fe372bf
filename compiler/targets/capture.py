"""Capture in a cluster environment: the served model becomes an ensemble of two steps.

The onnxruntime (or any other) backend runs no Python, so the capture step cannot live
inside the model as it does on the local Triton. Instead `<model>`, the name clients
call, is an ensemble: `<model>.model` is the model's own config under a step name, and
`<model>.capture` is a python-backend model (runtime/serving/capture_step) fed the
ensemble's inputs and the model's outputs, which it passes on as the ensemble's answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from tritonclient.grpc import model_config_pb2 as mc

from compiler.formats.ensemble import step_model_name
from compiler.ir import ModelIR
from compiler.targets import ensemble, triton
from runtime.contract import capture as contract

MODEL_STEP = "model"
CAPTURE_STEP = "capture"
# The model step's outputs inside the ensemble, before the capture step passes them on.
# Triton refuses a step without an output and an ensemble tensor nobody reads, so the
# capture step answers the model's outputs: the ensemble's signature stays the model's.
ANSWER_PREFIX = "kiln.answer."


@dataclass(frozen=True)
class Step:
    name: str
    input_map: tuple[tuple[str, str], ...]
    output_map: tuple[tuple[str, str], ...]


def is_capture_ensemble(model: ModelIR) -> bool:
    """Whether this model is served as the capture ensemble (a cluster with capture on)."""
    return model.capture is not None and not model.is_local and model.is_served


def version(model: ModelIR) -> int:
    """The one version the pod serves: the ensemble's and both steps' version folder."""
    (served,) = model.served
    return served.version


def model_step(model: ModelIR) -> str:
    return step_model_name(model.name, MODEL_STEP)


def capture_step(model: ModelIR) -> str:
    return step_model_name(model.name, CAPTURE_STEP)


def steps(model: ModelIR) -> tuple[Step, Step]:
    """The model step reads the ensemble's inputs; the capture step reads them and the
    model's answer, and hands the answer on as the ensemble's outputs."""
    inputs = tuple((t.name, t.name) for t in model.inputs)
    answer = tuple((t.name, f"{ANSWER_PREFIX}{t.name}") for t in model.outputs)
    passed = tuple((t.name, t.name) for t in model.outputs)
    return (
        Step(model_step(model), inputs, answer),
        Step(capture_step(model), inputs + answer, passed),
    )


def ensemble_config(model: ModelIR) -> mc.ModelConfig:
    config = ensemble.scheduled_config(model, version(model), steps(model))
    for output in config.output:
        # The capture step reports its outputs by their dims (a reshape is what a backend
        # produces, not what Triton reports), and Triton 2.51 refuses an ensemble output
        # whose reshape differs from that (measured): clients get the shape the model
        # served alone reports.
        output.ClearField("reshape")
    return config


def model_step_config(model: ModelIR) -> mc.ModelConfig:
    """The model's own config (runner, instances, batching, warm-up) under the step name."""
    config = triton.build_config(model)
    config.name = model_step(model)
    return config


def capture_step_config(model: ModelIR) -> mc.ModelConfig:
    """The python-backend capture step: the model's inputs and outputs in, its outputs
    out unchanged; one CPU instance, batching the requests Triton queues for it, so that
    a busy model costs it one execution per batch."""
    assert model.capture is not None
    batching = model.serving.max_batch_size > 0
    name = capture_step(model)
    config = mc.ModelConfig(
        name=name, backend=triton.LOCAL_BACKEND, max_batch_size=model.serving.max_batch_size
    )
    config.version_policy.specific.versions.append(version(model))
    triton.add_tensors(config, model.inputs + model.outputs, model.outputs, batching)
    if batching:
        config.dynamic_batching.SetInParent()
    config.instance_group.add(name=f"{name}-cpu", kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    # A parameter, not text: the spec's column names stay data in the message.
    config.parameters[contract.PARAMETER].string_value = model.capture.to_json()
    return config
