"""Capture as the last step of an ensemble: the served model's traffic recorded by a
python-backend model (runtime/serving/capture_step) that Triton's scheduler hands the
ensemble's inputs and its final answer.

Two ensembles carry it:

- a single model in a cluster environment: the onnxruntime (or any other) backend runs
  no Python, so the capture step cannot live inside the model as it does on the local
  Triton. `<model>`, the name clients call, becomes an ensemble of `<model>.model` (the
  model's own config under a step name) and `<model>.capture`;
- a declared ensemble (spec.ensemble), in every environment: the user's steps, then
  `<model>.capture`. The user's graph is checked as written (compiler/rules/ensemble.py);
  the lowering only renames the ensemble outputs the steps produce into answer tensors.

Either way the capture step reads the ensemble's inputs and the answer tensors
(`runtime.contract.capture.answer_tensor`) and passes the answer on as the ensemble's
outputs, so the ensemble's signature stays the model's.
"""

from __future__ import annotations

from dataclasses import dataclass

from tritonclient.grpc import model_config_pb2 as mc

from compiler.formats.ensemble import step_model_name
from compiler.ir import ModelIR
from compiler.targets import ensemble, triton
from runtime.contract import capture as contract

MODEL_STEP = "model"


@dataclass(frozen=True)
class Step:
    name: str
    input_map: tuple[tuple[str, str], ...]
    output_map: tuple[tuple[str, str], ...]


def is_capture_ensemble(model: ModelIR) -> bool:
    """Whether a single model is served as the capture ensemble (a cluster with capture on)."""
    return (
        model.capture is not None
        and model.ensemble is None
        and not model.is_local
        and model.is_served
    )


def has_capture_step(model: ModelIR) -> bool:
    """Whether the served ensemble ends in the capture step: the capture ensemble, or a
    declared ensemble with capture on."""
    return is_capture_ensemble(model) or (model.capture is not None and model.ensemble is not None)


def version(model: ModelIR) -> int:
    """The one version the pod serves: the ensemble's and every step's version folder, and
    the `model_version` of the rows the capture step writes."""
    if model.ensemble is not None:
        return model.ensemble.version
    (served,) = model.served
    return served.version


def model_step(model: ModelIR) -> str:
    return step_model_name(model.name, MODEL_STEP)


def capture_step(model: ModelIR) -> str:
    return contract.step_name(model.name)


def _capture_link(model: ModelIR) -> Step:
    """The capture step reads the ensemble's inputs and the answer, and hands the answer
    on as the ensemble's outputs."""
    inputs = tuple((t.name, t.name) for t in model.inputs)
    answer = tuple((t.name, contract.answer_tensor(t.name)) for t in model.outputs)
    passed = tuple((t.name, t.name) for t in model.outputs)
    return Step(capture_step(model), inputs + answer, passed)


def steps(model: ModelIR) -> tuple[Step, ...]:
    """The steps `<model>` schedules when it captures: the capture ensemble's model step
    or the declared ensemble's steps, each ensemble output they produce renamed to its
    answer tensor, then the capture step."""
    outputs = {t.name for t in model.outputs}
    own = tuple((t.name, t.name) for t in model.outputs)  # the model step's, by name

    def answered(output_map: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        return tuple(
            (key, contract.answer_tensor(value) if value in outputs else value)
            for key, value in output_map
        )

    if model.ensemble is None:
        inputs = tuple((t.name, t.name) for t in model.inputs)
        first: tuple[Step, ...] = (Step(model_step(model), inputs, answered(own)),)
    else:
        first = tuple(
            Step(s.name, s.input_map, answered(s.output_map)) for s in model.ensemble.steps
        )
    return (*first, _capture_link(model))


def ensemble_config(model: ModelIR) -> mc.ModelConfig:
    """`<model>` as an ensemble: the declared one, with the capture step last when capture
    is on; or the capture ensemble of a single model."""
    if model.ensemble is not None and model.capture is None:
        return ensemble.scheduled_config(model, model.ensemble.version, model.ensemble.steps)
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
    """The python-backend capture step: the ensemble's inputs and outputs in, its outputs
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
