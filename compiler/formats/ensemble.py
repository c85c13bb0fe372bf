"""An ensemble's steps lowered to what config.pbtxt and the local server need of them,
and their local artifacts checked: present, of the declared digest, of their format."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from compiler.diagnostics import Path_
from compiler.formats import NotTheFormat
from compiler.formats.python_model import check_step_py
from compiler.ir import ArtifactIR, EnsembleIR, EnsembleStepIR, FormatIR
from compiler.rules import signature
from compiler.rules.findings import Finding
from compiler.rules.locations import place_under
from compiler.spec.model import Ensemble, EnsembleStep, ModelSpec
from compiler.spec.model import Tensor as SpecTensor
from runtime.contract.formats import FORMATS
from runtime.contract.signature import Tensor

# Kiln model names are DNS labels, so a dot never clashes with another Model's name.
STEP_SEPARATOR = "."


def step_model_name(model: str, step: str) -> str:
    return f"{model}{STEP_SEPARATOR}{step}"


def _tensors(tensors: list[SpecTensor]) -> tuple[Tensor, ...]:
    return tuple(Tensor(t.name, t.dtype, tuple(t.shape)) for t in tensors)


def _step(
    model: str, spec: ModelSpec, version: int, step: EnsembleStep, models: str
) -> EnsembleStepIR:
    uri = place_under(step.artifact.uri, models)
    bundle = step.artifact.signature
    largest = spec.serving.max_batch_size
    return EnsembleStepIR(
        name=step_model_name(model, step.name),
        format=FormatIR(step.format, FORMATS[step.format].model_file),
        artifact=ArtifactIR(
            version,
            uri,
            step.artifact.sha256,
            not signature.is_remote(uri),
            (),
            signature=None if bundle is None else place_under(bundle, models),
        ),
        max_batch_size=largest if step.max_batch_size is None else step.max_batch_size,
        inputs=_tensors(step.signature.inputs),
        outputs=_tensors(step.signature.outputs),
        input_map=tuple(sorted(step.input_map.items())),
        output_map=tuple(sorted(step.output_map.items())),
    )


def lower_ensemble(model: str, spec: ModelSpec, models: str) -> EnsembleIR | None:
    """The ensemble with its steps' artifacts located under the model store `models`."""
    ensemble: Ensemble | None = spec.ensemble
    if ensemble is None:
        return None
    steps = tuple(_step(model, spec, ensemble.version, s, models) for s in ensemble.steps)
    return EnsembleIR(ensemble.version, steps)


def check_step_artifacts(spec: ModelSpec, ensemble: EnsembleIR, root: Path) -> Iterator[Finding]:
    """A local step's file exists inside the project and has its digest; a python step's
    model.py defines TritonPythonModel and compute() (parsed, never imported); an ONNX
    step's file has the tensors its signature declares."""
    inside = root.resolve()
    for i, step in enumerate(ensemble.steps):
        artifact = step.artifact
        if not artifact.local:
            continue
        at = ("spec", "ensemble", "steps", i, "artifact")
        location = artifact.uri.removeprefix("file://")
        path = (Path(location) if Path(location).is_absolute() else root / location).resolve()
        if not path.is_relative_to(inside):
            yield Finding(
                (*at, "uri"),
                "KILN1711",
                f"artifact of step {step.name} ({artifact.uri}) resolves outside the project",
                "keep local models under the project (the environment's model store)",
            )
            continue
        if not path.is_file():
            yield Finding(
                (*at, "uri"),
                "KILN1701",
                f"artifact of step {step.name} not found at {artifact.uri}",
                "fix the path",
            )
            continue
        with path.open("rb") as file:  # in chunks: a step file has no size cap of its own
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        if artifact.sha256 is not None and digest != artifact.sha256:
            message = f"{artifact.uri} has sha256 {digest}, declared {artifact.sha256}"
            yield Finding((*at, "sha256"), "KILN1703", message)
        if step.format.name == "python":
            try:
                check_step_py(path)
            except NotTheFormat as exc:
                hint = (
                    "define class TritonPythonModel with execute(), and a module-level "
                    "compute(**inputs) -> {output: array} that execute() calls"
                )
                yield Finding((*at, "uri"), "KILN1754", f"{artifact.uri}: {exc}", hint)
        else:
            yield from _onnx_step(spec, i, path, artifact.uri)


def _onnx_step(spec: ModelSpec, index: int, path: Path, uri: str) -> list[Finding]:
    """An ONNX step's declared tensors against the file, read with onnxruntime."""
    assert spec.ensemble is not None
    at: Path_ = ("spec", "ensemble", "steps", index)
    try:
        model = signature.load_onnx(path)
    except (signature.UnreadableModel, OSError) as exc:
        return [Finding((*at, "artifact", "uri"), "KILN1702", f"cannot read {uri}: {exc}")]
    declared = spec.ensemble.steps[index].signature
    return signature.check_declared_against_model(declared, model, (*at, "signature"))
