"""A compiled model handed to the serving tools, as `runtime.contract.served.ServedModel`.

`kiln serve` and `kiln smoke` (and the tests and benchmarks that start a local Triton)
take the model through here: the specs are resolved only to find the model's served
artifacts and signature, and its compiled `config.pbtxt` must be what the specs say
today, so a stale `generated/` is refused instead of served.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from compiler.ir import ArtifactIR, EnsembleStepIR, ModelIR
from compiler.resolve import UnknownModel, local_path, resolve
from compiler.rules.signature import is_remote
from compiler.targets import capture, ensemble, serving, triton
from runtime.contract.formats import FORMATS, NOT_SERVED_LOCALLY
from runtime.contract.served import ArtifactSource, InstalledConfig, ServedModel, ServedStep


class NotServable(Exception):
    """The model cannot be handed to the serving tools; the message says what to do."""


def model_ir(specs: Path, name: str, environment: str) -> tuple[ModelIR, Path]:
    """The model's IR in an environment and the project root (NotServable if unusable).

    Only resolution is needed: a problem in another target's rendering does not
    stop a model from being served, and a model with spec errors has no IR.
    """
    if not specs.is_dir():
        raise NotServable(f"spec folder {specs} does not exist (use --specs)")
    resolution = resolve(specs)
    try:
        model = resolution.find(name, environment)
    except UnknownModel as exc:
        raise NotServable(str(exc)) from exc
    if model.ensemble is not None:
        return model, resolution.root
    if not model.is_served:
        raise NotServable(_nothing_served(model, name, environment))
    refused = NOT_SERVED_LOCALLY.get(model.format.name)
    if refused is not None:
        # The local Triton has the python backend alone (runtime/contract/formats.py).
        raise NotServable(
            f"model {name} serves a {model.format.name} model, which the local Triton does "
            f"not serve: {refused}. Its config is compiled and checked for a cluster's Triton; "
            "see docs/serving.md for the formats served locally"
        )
    return model, resolution.root


def _nothing_served(model: ModelIR, name: str, environment: str) -> str:
    """Why no version serves here. Versions only of formats the local Triton does not
    run (a GPU-only TensorRT plan) would not be helped by training one locally."""
    formats = sorted({v.format for v in model.versions})
    if formats and all(f in NOT_SERVED_LOCALLY for f in formats):
        reasons = "; ".join(f"{f}: {NOT_SERVED_LOCALLY[f]}" for f in formats)
        gpu = " with GPUs" if any(FORMATS[f].gpu_only for f in formats) else ""
        return (
            f"model {name} has no version served in environment {environment}: its "
            f"versions are {', '.join(formats)}, which the local Triton does not serve "
            f"({reasons}). Serve it in a cluster environment{gpu}, or declare an ONNX "
            "export of it as a version to serve here"
        )
    return (
        f"model {name} has no version served in environment {environment} yet: train "
        f"one with `kiln run {name} --local`, declare the version it publishes under "
        "spec.versions, set serving.version to it and run `kiln compile`"
    )


def artifact_sources(model: ModelIR, root: Path) -> tuple[ArtifactSource, ...]:
    """Served versions: local files resolved against the project root, URLs as they are
    (a signature bundle lies beside its artifact, so it is located the same way). A
    python version's execution_env goes where the config has EXECUTION_ENV_PATH: not in
    the `local` environment, whose stub runs Kiln's backend venv instead."""

    def located(uri: str, local: bool) -> str:
        return str(local_path(uri, root)) if local else uri

    def archive(a: ArtifactIR) -> tuple[str | None, str | None]:
        if model.is_local or a.execution_env is None:
            return None, None
        return located(a.execution_env, not is_remote(a.execution_env)), a.execution_env_sha256

    return tuple(
        ArtifactSource(
            a.version,
            located(a.uri, a.local),
            a.sha256,
            None if a.signature is None else located(a.signature, a.local),
            *archive(a),
        )
        for a in model.served
    )


def _compiled(path: Path, expected: mc.ModelConfig) -> str:
    """A compiled config's text, refused when missing or not what the specs say today."""
    if not path.is_file():
        raise NotServable(f"{path} does not exist; run `kiln compile` first")
    text = path.read_text(encoding="utf-8")
    try:
        compiled = triton.parse(text)
    except Exception as exc:  # text_format.ParseError and friends
        raise NotServable(f"{path} is not a valid Triton config: {exc}") from exc
    # Compared as protobuf messages: comments and formatting do not matter, content does.
    if compiled != expected:
        raise NotServable(f"{path} is out of date with the specs; run `kiln compile` first")
    return text


def compiled_config(model: ModelIR, generated: Path) -> tuple[str, Path]:
    """The compiled config.pbtxt's text and path (of the ensemble, for an ensemble)."""
    path = generated / model.environment.name / model.name / "triton" / triton.CONFIG_FILE
    if model.ensemble is not None:
        return _compiled(path, capture.ensemble_config(model)), path
    return _compiled(path, triton.build_config(model)), path


def served_steps(model: ModelIR, root: Path, generated: Path) -> tuple[ServedStep, ...]:
    """An ensemble's steps with their compiled configs and located artifacts."""
    if model.ensemble is None:
        return ()
    folder = generated / model.environment.name / model.name / "triton" / ensemble.STEPS_FOLDER
    return _steps(
        model,
        root,
        lambda step: _compiled(
            folder / step.name / triton.CONFIG_FILE, ensemble.step_config(model, step)
        ),
    )


def compiled_capture_step(model: ModelIR, generated: Path) -> InstalledConfig | None:
    """A declared ensemble's capture step with its compiled config (None: capture off)."""
    if model.ensemble is None or not capture.has_capture_step(model):
        return None
    name = capture.capture_step(model)
    folder = generated / model.environment.name / model.name / "triton" / ensemble.STEPS_FOLDER
    text = _compiled(folder / name / triton.CONFIG_FILE, capture.capture_step_config(model))
    return InstalledConfig(name, text)


def ensemble_parts(model: ModelIR, root: Path) -> tuple[str, tuple[ServedStep, ...]]:
    """The ensemble's config and steps as the specs say today (for `kiln smoke`)."""
    text = triton.serialize(capture.ensemble_config(model))
    steps = _steps(model, root, lambda s: triton.serialize(ensemble.step_config(model, s)))
    return text, steps


def _steps(
    model: ModelIR, root: Path, config_text: Callable[[EnsembleStepIR], str]
) -> tuple[ServedStep, ...]:
    assert model.ensemble is not None
    steps = []
    for step in model.ensemble.steps:
        text = config_text(step)
        artifact = step.artifact
        located = (lambda u: str(local_path(u, root))) if artifact.local else (lambda u: u)
        bundle = None if artifact.signature is None else located(artifact.signature)
        source = ArtifactSource(artifact.version, located(artifact.uri), artifact.sha256, bundle)
        steps.append(ServedStep(step.name, text, source))
    return tuple(steps)


def served_model(specs: Path, name: str, environment: str, generated: Path) -> ServedModel:
    """The model as the serving tools take it (NotServable with the reason otherwise)."""
    model, root = model_ir(specs, name, environment)
    text, path = compiled_config(model, generated)
    return ServedModel(
        name=model.name,
        environment=model.environment.name,
        signature=serving.signature(model),
        artifacts=artifact_sources(model, root),
        config_text=text,
        config_path=path,
        root=root,
        local=model.is_local,
        trust=model.environment.trust,
        steps=served_steps(model, root, generated),
        ensemble_version=None if model.ensemble is None else model.ensemble.version,
        capture_step=compiled_capture_step(model, generated),
    )
