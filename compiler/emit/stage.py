"""A first compile: the whole output written in a folder beside it, then renamed.

When the output folder does not exist, there is nothing in it to compare, to claim
or to be in the way: the tree, manifest included, is filled in a temporary folder
(a `Stage`) and renamed to the output folder, so that it appears whole or not at all.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from compiler.artifact import Artifact, Stat
from compiler.diagnostics import Diagnostic
from compiler.emit import files
from compiler.emit.files import folder_of
from compiler.emit.manifest import MANIFEST, planned_files
from compiler.emit.modes import EmitReport
from compiler.emit.problems import cannot_write


@dataclass(frozen=True)
class Stage:
    """A first compile's output (into `out`, which does not exist), filled in a
    temporary folder beside it and renamed to `out` when whole: the output appears
    whole or not at all, so nothing needs claiming, and nothing can be in the way.

    The processes that render the models write their folders into it as they go
    (`write`), so that the bytes need not travel back; `emit` adds the rest."""

    out: Path
    folder: Path

    @classmethod
    def beside(cls, out: Path) -> Stage:
        return cls(out, out.with_name(f".{out.name}.{os.getpid()}.kiln-tmp"))

    def create(self) -> Diagnostic | None:
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.folder.mkdir()
        except OSError as exc:
            return cannot_write(self.out, exc)
        return None

    def write(self, artifacts: list[Artifact]) -> dict[str, Stat]:
        """Write new files (of folders no other process writes files into)."""
        base = str(self.folder)
        for folder in sorted({folder_of(a.path) for a in artifacts}):
            os.makedirs(f"{base}/{folder}", exist_ok=True)
        return {a.path: files.write_new(f"{base}/{a.path}", a.data) for a in artifacts}

    def failed(self, exc: OSError) -> Diagnostic:
        return cannot_write(self.out, exc)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def write_first_compile(out: Path, artifacts: list[Artifact], stage: Stage | None) -> EmitReport:
    """Write the output folder `out`, which does not exist, through a stage.

    A `stage` holds the artifacts marked `written` already (the workers wrote them);
    without one, a stage is made here and every artifact is written into it.
    """
    report = EmitReport()
    if stage is None:
        stage = Stage.beside(out)
        problem = stage.create()
        if problem is not None:
            report.diagnostics.append(problem)
            return report
    written = {a.path: a.written for a in artifacts if a.written is not None}
    planned = planned_files([a for a in artifacts if a.written is None], artifacts)
    to_write = sorted(p for p in planned if p != MANIFEST)
    try:
        report.stats = _fill_and_rename(stage, to_write, planned)
    except OSError as exc:
        report.diagnostics.append(cannot_write(out, exc))
        return report
    report.stats.update(written)
    report.written.extend(sorted([*to_write, *written]))
    return report


def _fill_and_rename(
    stage: Stage, to_write: list[str], planned: dict[str, bytes]
) -> dict[str, Stat]:
    """Write what is not in `stage` yet, and the manifest, then rename it into place."""
    temporary = stage.folder
    try:
        stats = files.write_all(temporary, to_write, planned, {""}, staged=True)
        stats[MANIFEST] = files.write_new(str(temporary / MANIFEST), planned[MANIFEST])
        os.rename(temporary, stage.out)
    except BaseException:
        stage.discard()
        raise
    return stats
