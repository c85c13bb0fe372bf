"""Emit: write artifacts atomically, prune what Kiln owned, or check and diff.

Kiln owns exactly the files listed in the manifest of its last compile. It never
overwrites or deletes anything else, and it writes nothing at all when a
conflict is found. `WriteBack` chooses between writing, checking and diffing.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from compiler.artifact import Artifact
from compiler.diagnostics import Diagnostic

MANIFEST = "kiln-manifest.json"
MANIFEST_FORMAT = 1


class WriteBack(Enum):
    YES = "write"
    CHECK = "check"
    DIFF = "diff"


@dataclass
class EmitReport:
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    diff: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_text(artifacts: list[Artifact]) -> str:
    specs: dict[str, str] = {}
    files: dict[str, dict[str, object]] = {}
    for artifact in artifacts:
        for source in artifact.sources:
            specs[source.file] = source.digest
        files[artifact.path] = {
            "sha256": sha256(artifact.data),
            "sources": sorted({s.file for s in artifact.sources}),
        }
    document = {"format": MANIFEST_FORMAT, "generator": "kiln", "files": files, "specs": specs}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def owned_files(out: Path) -> set[str]:
    """Files the last compile wrote, from its manifest (none if there is no manifest)."""
    try:
        document = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        return set(document["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _prune_empty_parents(path: Path, out: Path) -> None:
    parent = path.parent
    while parent != out and out in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def _display(out: Path, relative: str) -> str:
    return (out / relative).as_posix()


def _planned(artifacts: list[Artifact]) -> dict[str, bytes]:
    planned = {a.path: a.data for a in artifacts}
    planned[MANIFEST] = manifest_text(artifacts).encode("utf-8")
    return planned


def emit(out: Path, artifacts: list[Artifact], mode: WriteBack) -> EmitReport:
    """Bring `out` in line with `artifacts`, or report how it differs."""
    report = EmitReport()
    planned = _planned(artifacts)
    owned = owned_files(out)
    owned_or_manifest = owned | {MANIFEST}
    current = {path: _read(out / path) for path in planned}
    changed = sorted(p for p, data in planned.items() if current[p] != data)
    stale = sorted(p for p in owned - planned.keys() if (out / p).exists())
    report.unchanged = len(planned) - len(changed)

    if mode is WriteBack.CHECK:
        for path in changed:
            state = "missing" if current[path] is None else "stale"
            report.diagnostics.append(_stale(out, path, f"{state}: run `kiln compile`"))
        for path in stale:
            report.diagnostics.append(_stale(out, path, "no longer produced by any spec"))
        return report
    if mode is WriteBack.DIFF:
        report.diff = _diff(out, planned, current, changed, stale)
        return report

    conflicts = [p for p in changed if current[p] is not None and p not in owned_or_manifest]
    if conflicts:
        report.diagnostics.extend(
            Diagnostic(
                _display(out, p),
                1,
                1,
                "KILN1901",
                "Kiln would overwrite this file, which it did not write",
                hint="move it away, or compile to another --out",
            )
            for p in conflicts
        )
        return report
    try:
        for path in changed:
            if path != MANIFEST:
                _atomic_write(out / path, planned[path])
                report.written.append(path)
        for path in stale:
            (out / path).unlink()
            _prune_empty_parents(out / path, out)
            report.removed.append(path)
        if MANIFEST in changed or report.removed:
            _atomic_write(out / MANIFEST, planned[MANIFEST])
    except OSError as exc:
        report.diagnostics.append(
            Diagnostic(_display(out, ""), 1, 1, "KILN1903", f"cannot write output: {exc}")
        )
    return report


def _stale(out: Path, path: str, message: str) -> Diagnostic:
    return Diagnostic(_display(out, path), 1, 1, "KILN1902", message)


def _diff(
    out: Path,
    planned: dict[str, bytes],
    current: dict[str, bytes | None],
    changed: list[str],
    stale: list[str],
) -> str:
    chunks: list[str] = []
    for path in changed:
        before = (current[path] or b"").decode("utf-8", "replace").splitlines(keepends=True)
        after = planned[path].decode("utf-8").splitlines(keepends=True)
        name = _display(out, path)
        chunks.extend(difflib.unified_diff(before, after, f"a/{name}", f"b/{name}"))
    for path in stale:
        before = (_read(out / path) or b"").decode("utf-8", "replace").splitlines(keepends=True)
        name = _display(out, path)
        chunks.extend(difflib.unified_diff(before, [], f"a/{name}", "/dev/null"))
    return "".join(chunks)
