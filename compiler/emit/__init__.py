"""Emit: write artifacts atomically, prune what Kiln owned, or check and diff.

Kiln owns exactly the files listed in the manifest of its last compile. It never
overwrites or deletes anything else, and it writes nothing at all when a
conflict is found. `WriteBack` chooses between writing, checking and diffing,
once, in `emit`; each mode is a module of its own:

- `stage`: a first compile, written whole beside the output and renamed into place;
- `update`: changes written into an output that exists (the incremental build's too);
- `compare`: the planned files against the output, for `--check` and `--diff`;
- `files` (atomic writes, new folders, pruning), `manifest` (its text, what Kiln
  owns) and `problems` (the KILN19xx diagnostics) serve them.
"""

from __future__ import annotations

import os
from pathlib import Path

from compiler.artifact import Artifact
from compiler.emit.compare import check, compare, diff
from compiler.emit.manifest import (
    MANIFEST,
    MANIFEST_FORMAT,
    manifest_entries,
    manifest_from_entries,
    manifest_sources,
    manifest_text,
    owned_files,
)
from compiler.emit.modes import EmitReport, WriteBack
from compiler.emit.problems import linked_output
from compiler.emit.stage import Stage, write_first_compile
from compiler.emit.update import emit_changes, write_changes

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "EmitReport",
    "Stage",
    "WriteBack",
    "emit",
    "emit_changes",
    "manifest_entries",
    "manifest_from_entries",
    "manifest_sources",
    "manifest_text",
    "owned_files",
]


def emit(
    out: Path, artifacts: list[Artifact], mode: WriteBack, stage: Stage | None = None
) -> EmitReport:
    """Bring `out` in line with `artifacts`, or report how it differs.

    A `stage` (for an `out` that does not exist) holds the artifacts marked
    `written` already; `emit` writes the others and moves it into place.
    """
    if os.path.islink(out):
        return EmitReport(diagnostics=[linked_output(out)])
    if mode is WriteBack.YES and (stage is not None or not os.path.lexists(out)):
        return write_first_compile(out, artifacts, stage)
    comparison = compare(out, artifacts)
    if mode is WriteBack.CHECK:
        return check(out, comparison)
    if mode is WriteBack.DIFF:
        return diff(out, comparison)
    return write_changes(out, comparison)
