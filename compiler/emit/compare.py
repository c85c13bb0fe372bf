"""The planned files against the output folder, and the two modes that only report
it: `--check` (diagnostics) and `--diff` (a unified diff). Neither writes."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from compiler.artifact import Artifact
from compiler.diagnostics import Diagnostic
from compiler.emit.files import folder_of, present_folders, read, removable
from compiler.emit.manifest import owned_files, planned_files, refused_entries
from compiler.emit.modes import EmitReport
from compiler.emit.problems import display, left_in_place, refused_entry, stale


@dataclass(frozen=True)
class Comparison:
    """How the output folder differs from what the compile made."""

    planned: dict[str, bytes]  # every file's bytes, the manifest's included
    owned: dict[str, set[str]]  # the files the last manifest lists, with their sha256
    present: set[str]  # the folders of the planned files that exist (see `present_folders`)
    current: dict[str, bytes | None]  # each planned file's bytes now (None: missing)
    changed: list[str]  # planned files whose bytes differ or that are missing, sorted
    stale: list[str]  # owned files no longer planned that Kiln may delete, sorted
    warnings: list[Diagnostic]  # files left in place, manifest entries ignored

    @property
    def unchanged(self) -> int:
        return len(self.planned) - len(self.changed)


def compare(out: Path, artifacts: list[Artifact]) -> Comparison:
    planned = planned_files(artifacts)
    owned = owned_files(out)
    present = present_folders(out, planned)
    # A file whose folder is not there is not there either: no need to try reading it.
    current = {p: read(out / p) if folder_of(p) in present else None for p in planned}
    changed = sorted(p for p, data in planned.items() if current[p] != data)
    stale_files: list[str] = []
    warnings = [refused_entry(out, entry) for entry in refused_entries(out)]
    for path in sorted(owned.keys() - planned.keys()):
        if removable(out, path, owned[path]):
            stale_files.append(path)
        elif os.path.lexists(out / path):
            why = "it is not the file Kiln wrote (changed since, or a link)"
            warnings.append(left_in_place(out, path, why))
    return Comparison(planned, owned, present, current, changed, stale_files, warnings)


def check(out: Path, comparison: Comparison) -> EmitReport:
    """`--check`: every stale, missing or orphaned file, as a KILN1902."""
    report = EmitReport(unchanged=comparison.unchanged, diagnostics=[*comparison.warnings])
    for path in comparison.changed:
        state = "missing" if comparison.current[path] is None else "stale"
        report.diagnostics.append(stale(out, path, f"{state}: run `kiln compile`"))
    for path in comparison.stale:
        report.diagnostics.append(stale(out, path, "no longer produced by any spec"))
    return report


def diff(out: Path, comparison: Comparison) -> EmitReport:
    """`--diff`: what `kiln compile` would change, as a unified diff."""
    report = EmitReport(unchanged=comparison.unchanged, diff=_unified_diff(out, comparison))
    report.diagnostics.extend(comparison.warnings)
    return report


def _unified_diff(out: Path, comparison: Comparison) -> str:
    chunks: list[str] = []
    for path in comparison.changed:
        before = comparison.current[path] or b""
        after = comparison.planned[path].decode("utf-8").splitlines(keepends=True)
        name = display(out, path)
        lines = before.decode("utf-8", "replace").splitlines(keepends=True)
        chunks.extend(difflib.unified_diff(lines, after, f"a/{name}", f"b/{name}"))
    for path in comparison.stale:
        before = read(out / path) or b""
        name = display(out, path)
        lines = before.decode("utf-8", "replace").splitlines(keepends=True)
        chunks.extend(difflib.unified_diff(lines, [], f"a/{name}", "/dev/null"))
    return "".join(chunks)
