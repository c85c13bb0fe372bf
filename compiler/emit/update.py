"""Writing changes into an output folder that exists: a full compile's (`write_changes`)
and the incremental build's (`emit_changes`).

Kiln owns exactly the files its last manifest lists. It never overwrites or deletes
anything else, and writes nothing at all when something else is in the way. Before
writing a file the manifest does not list yet, it claims it (an interim manifest);
the final manifest is written last.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from compiler.artifact import Artifact
from compiler.diagnostics import Diagnostic
from compiler.emit import files
from compiler.emit.compare import Comparison
from compiler.emit.files import folder_of, in_the_way, present_folders
from compiler.emit.manifest import MANIFEST, claim_text
from compiler.emit.modes import EmitReport
from compiler.emit.problems import blocked, cannot_write, not_ours


def write_changes(out: Path, comparison: Comparison) -> EmitReport:
    """Write the files that differ and delete the stale ones, unless a file Kiln
    does not own is in the way: then report it and write nothing."""
    report = EmitReport(unchanged=comparison.unchanged, diagnostics=[*comparison.warnings])
    problems = _conflicts(out, comparison)
    if problems:
        report.diagnostics.extend(problems)
        return report
    planned, changed, stale = comparison.planned, comparison.changed, comparison.stale
    _apply(out, report, planned, changed, stale, set(comparison.owned), comparison.present)
    return report


def _conflicts(out: Path, comparison: Comparison) -> list[Diagnostic]:
    """Changed files that exist and are not Kiln's, then missing files that a folder
    or file not Kiln's stands in the way of."""
    current, owned_or_manifest = comparison.current, {*comparison.owned, MANIFEST}
    changed = comparison.changed
    conflicts = [p for p in changed if current[p] is not None and p not in owned_or_manifest]
    missing = [p for p in changed if current[p] is None]
    stuck = in_the_way(out, missing, comparison.present)
    return [not_ours(out, p) for p in conflicts] + [blocked(out, p) for p in stuck]


def emit_changes(
    out: Path,
    changed: list[Artifact],
    stale: Mapping[str, str],
    manifest: bytes | None,
    owned: set[str],
) -> EmitReport | None:
    """Write the `changed` files and the `manifest` (None: it is the same), delete the
    `stale` ones (with the sha256 Kiln wrote), in an output folder that is exactly as
    the last compile left it (the caller made sure: the incremental build). `owned` is
    what Kiln owns there. None, with nothing written, when a file Kiln does not own, a
    link or a file Kiln would not delete is in the way (a full compile reports it)."""
    if not files.is_folder(out):
        return None
    if any(not files.removable(out, path, {digest}) for path, digest in stale.items()):
        return None
    planned = {a.path: a.data for a in changed}
    fresh = [p for p in planned if p not in owned]
    present = present_folders(out, [*planned, MANIFEST])
    base = str(out)
    if any(folder_of(p) in present and os.path.lexists(f"{base}/{p}") for p in fresh):
        return None
    if in_the_way(out, [p for p in fresh if folder_of(p) not in present], present):
        return None
    if manifest is not None:
        planned[MANIFEST] = manifest
    report = EmitReport()
    _apply(out, report, planned, sorted(planned), sorted(stale), owned, present)
    return report


def _apply(
    out: Path,
    report: EmitReport,
    planned: dict[str, bytes],
    changed: list[str],
    stale: list[str],
    owned: set[str],
    present: set[str],
) -> None:
    """Write the `changed` files (the manifest last), delete the `stale` ones."""
    try:
        to_write = [p for p in changed if p != MANIFEST]
        if not owned.issuperset(to_write):
            # Claim the files before writing them: if a write fails half-way, the
            # next compile still knows they are Kiln's and rewrites them. (Files the
            # last manifest lists are Kiln's already.)
            files.atomic_write(out / MANIFEST, claim_text(owned | set(to_write)))
            present.add("")
        report.stats = files.write_all(out, to_write, planned, present)
        report.written.extend(to_write)
        for path in stale:
            (out / path).unlink()
            files.prune_empty_parents(out / path, out)
            report.removed.append(path)
        if MANIFEST in changed or report.removed or to_write:
            report.stats[MANIFEST] = files.atomic_write(out / MANIFEST, planned[MANIFEST])
    except OSError as exc:
        report.diagnostics.append(cannot_write(out, exc))
