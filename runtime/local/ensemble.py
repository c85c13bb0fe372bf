"""A Triton ensemble in the local model repository, assembled by the serving pod's own
code (runtime/serving/ensemble.py); what differs locally is the python-backend adapter
(and the files it imports) beside an ONNX step's model.onnx, since the local Triton has
no onnxruntime backend. A python step is its own model.py and gets nothing else (the
adapter would replace it). With capture on, the capture step comes last, installed as
the pod installs it, without `libraries/`: the local backend venv has pyarrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runtime.contract.served import ServedModel, ServedStep
from runtime.contract.signing import Trust
from runtime.serving import ensemble


def assemble_ensemble(
    model: ServedModel, repository: Path, adapter_files: Sequence[Path], trust: Trust | None = None
) -> list[str]:
    """Write every step's folder and the ensemble's, or change nothing; the lines that say
    what was verified. AssembleError names the fault."""
    assert model.ensemble_version is not None

    def extra(step: ServedStep) -> Sequence[Path]:
        return list(adapter_files) if step.onnx else []

    steps: list[ensemble.Step] = list(model.steps)
    if model.capture_step is not None:
        recorder = model.capture_step
        steps.append(
            ensemble.InstalledStep(
                recorder.name, recorder.config_text, model.ensemble_version, libraries=None
            )
        )
    return ensemble.assemble_ensemble(
        model.name,
        model.config_text,
        model.ensemble_version,
        steps,
        repository,
        trust=trust if trust is not None else model.trust,
        extra_files=extra,
    )
