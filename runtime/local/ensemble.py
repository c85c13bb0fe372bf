"""A Triton ensemble in the local model repository: each step assembled like a single
model (fetched, digest checked), the ensemble itself a config beside an empty version
folder, which is all Triton's ensemble scheduler needs (it lives in the core server).

An ONNX step gets the python-backend adapter (and the files it imports) beside its
model.onnx; a python step is its own model.py and gets nothing else (the adapter would
replace it).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from runtime.contract.served import ServedModel
from runtime.serving.assemble import assemble

CONFIG_NAME = "config.pbtxt"


def assemble_ensemble(
    model: ServedModel, repository: Path, adapter_files: Sequence[Path]
) -> list[str]:
    """Write every step's folder and the ensemble's; the lines that say what was done.
    AssembleError from a step leaves that step's folder as it was."""
    assert model.ensemble_version is not None
    lines = []
    for step in model.steps:
        extra = list(adapter_files) if step.onnx else []
        assemble(step.name, [step.artifact], step.config_text, repository, extra_files=extra)
        digest = "sha256 verified" if step.artifact.sha256 else "no sha256 declared"
        lines.append(f"step {step.name} version {step.artifact.version}: {digest}")
    _ensemble_folder(model, repository)
    return lines


def _ensemble_folder(model: ServedModel, repository: Path) -> None:
    """`<repository>/<model>/config.pbtxt` and its empty version folder, swapped in whole."""
    repository.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{model.name}.assemble-", dir=repository))
    (staged / str(model.ensemble_version)).mkdir()
    (staged / CONFIG_NAME).write_text(model.config_text, encoding="utf-8")
    target = repository / model.name
    if target.exists():
        shutil.rmtree(target)
    staged.rename(target)
