"""An ensemble computed in process, the reference `kiln smoke` compares Triton with.

The steps run in the order their tensors allow, wired by the compiled ensemble
config's `ensemble_scheduling` (the same maps Triton follows): an ONNX step in
onnxruntime with one intra-op thread as the adapter runs it, a python step through
the module-level `compute(**inputs) -> {output: array}` its model.py defines. The
model.py is the user's own serving code, run here as Triton runs it.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from runtime.contract import capture
from runtime.contract.served import STEP_FUNCTION, ServedStep
from runtime.contract.triton_config import read_config
from runtime.serving.assemble import AssembleError, fetch
from runtime.serving.references import BySignature, Tolerance

Run = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


class ReferenceError(Exception):
    """The ensemble cannot be computed in process; the message says why."""


class EnsembleReference(BySignature):
    """A smoke reference (runtime.serving.references.Reference): the ensemble's raw
    inputs in, its final outputs out, computed by its steps in process."""

    library = "the ensemble's steps"
    tolerance: Tolerance | None = None  # the same code on the same inputs: exactly equal

    def __init__(self, ensemble_config: str, steps: Sequence[ServedStep], folder: Path) -> None:
        config = read_config(ensemble_config)
        runners = {s.name: _runner(s, folder) for s in steps}
        runners[capture.step_name(config.name)] = _passed_on
        self.steps = [
            (runners[s.model_name], dict(s.input_map), dict(s.output_map))
            for s in config.ensemble_scheduling.step
        ]

    def run(
        self, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        tensors = dict(arrays)
        pending = list(self.steps)
        while pending:
            ready = [s for s in pending if all(t in tensors for t in s[1].values())]
            if not ready:
                raise ReferenceError("the ensemble's steps wait on tensors no step produces")
            for run, inputs, produced in ready:
                result = run({key: tensors[source] for key, source in inputs.items()})
                tensors.update({target: result[key] for key, target in produced.items()})
                pending.remove((run, inputs, produced))
        return {name: tensors[name] for name in outputs}


def _passed_on(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The capture step: it records and answers the answer it is handed (each output of
    the step is its input of the same name)."""
    return inputs


def _runner(step: ServedStep, folder: Path) -> Run:
    artifact = step.artifact
    path = folder / step.name / ("model.onnx" if step.onnx else "model.py")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fetch(artifact.uri, path, artifact.sha256)
    except AssembleError as exc:
        raise ReferenceError(f"step {step.name}: {exc}") from exc
    return _onnx(path) if step.onnx else _python(step.name, path)


def _onnx(path: Path) -> Run:
    from runtime.serving.smoke import reference_session

    session = reference_session(path)
    names = [o.name for o in session.get_outputs()]

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, inputs), strict=True))

    return run


def _python(name: str, path: Path) -> Run:
    spec = importlib.util.spec_from_file_location(f"kiln_step_{abs(hash(name))}", path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    compute: Any = getattr(module, STEP_FUNCTION, None)
    if not callable(compute):
        raise ReferenceError(
            f"step {name}: model.py defines no function `{STEP_FUNCTION}(**inputs)`, which the "
            "smoke test runs in process to compare Triton's answers with"
        )

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in compute(**inputs).items()}

    return run


def ensemble_reference(ensemble_config: str, steps: Sequence[ServedStep]) -> EnsembleReference:
    """The reference, its step files fetched (digests checked) into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="kiln-smoke-ensemble-") as folder:
        return EnsembleReference(ensemble_config, steps, Path(folder))
