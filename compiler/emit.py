"""Emit: write artifacts atomically, prune what Kiln owned, or check and diff.

Kiln owns exactly the files listed in the manifest of its last compile. It never
overwrites or deletes anything else, and it writes nothing at all when a
conflict is found. `WriteBack` chooses between writing, checking and diffing.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from operator import attrgetter
from pathlib import Path

from compiler import forking
from compiler.artifact import Artifact, Stat
from compiler.diagnostics import Diagnostic
from compiler.ir import Source
from compiler.serialize import to_json

MANIFEST = "kiln-manifest.json"
MANIFEST_FORMAT = 1
PARALLEL_WRITES = 2000  # files; fewer are written by this process alone


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
    # Size and mtime (ns) of each file written, taken as it was written: the no-change
    # shortcut records them without asking the file system again.
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)


def manifest_entries(artifacts: list[Artifact]) -> list[tuple[str, str]]:
    """Each file's entry in the manifest, by path, sorted.

    Assembled as text, not as a dict for the encoder: the files of one model share
    their sources, whose JSON is made once, so a file costs one string format
    (75,000 files: 0.27 to 0.17 s).
    """
    blocks: dict[tuple[Source, ...], str] = {}  # the "sources" lines of each tuple
    entries: list[tuple[str, str]] = []
    for artifact in sorted(artifacts, key=attrgetter("path")):
        block = blocks.get(artifact.sources)
        if block is None:
            names = sorted({s.file for s in artifact.sources})
            block = blocks[artifact.sources] = _json_list(names, "      ")
        entries.append(  # a sha256 is hex digits: nothing to escape
            (
                artifact.path,
                f'    {_json_string(artifact.path)}: {{\n      "sha256": '
                f'"{artifact.digest}",\n      "sources": {block}\n    }}',
            )
        )
    return entries


def manifest_sources(artifacts: Iterable[Artifact]) -> dict[str, str]:
    """The digest of each spec that made any of the files."""
    return {source.file: source.digest for a in artifacts for source in a.sources}


def manifest_from_entries(entries: Iterable[str], specs: dict[str, str]) -> str:
    """The manifest from its file entries (in path order) and its specs' digests."""
    files = ",\n".join(entries)
    files = "{\n" + files + "\n  }" if files else "{}"
    spec_lines = [f"    {_json_string(f)}: {_json_string(d)}" for f, d in sorted(specs.items())]
    specs_text = "{\n" + ",\n".join(spec_lines) + "\n  }" if spec_lines else "{}"
    return (
        f'{{\n  "files": {files},\n  "format": {MANIFEST_FORMAT},\n  "generator": "kiln",\n'
        f'  "specs": {specs_text}\n}}\n'
    )


def manifest_text(artifacts: list[Artifact]) -> str:
    """The manifest: every file with its sha256 and source specs, and each spec's digest.

    Written as `to_json` writes the same document (tested)."""
    entries = (entry for _, entry in manifest_entries(artifacts))
    return manifest_from_entries(entries, manifest_sources(artifacts))


_PLAIN_JSON = re.compile(r"[A-Za-z0-9 _./@+:-]*")  # needs no escaping inside quotes


def _json_string(text: str) -> str:
    if _PLAIN_JSON.fullmatch(text):
        return f'"{text}"'
    return to_json(text).rstrip("\n")


def _json_list(items: list[str], indent: str) -> str:
    if not items:
        return "[]"
    inner = ",\n".join(f"{indent}  {_json_string(i)}" for i in items)
    return f"[\n{inner}\n{indent}]"


def _conflict_sides(text: str) -> list[str]:
    """The versions git merged into a file it left with conflict markers: ours, the
    merge base (with diff3 markers) and theirs, each with the lines around them."""
    sides = ["", "", ""]
    side: int | None = None
    for line in text.splitlines(keepends=True):
        marker = line.rstrip("\r\n")
        if marker.startswith("<<<<<<< ") or marker == "<<<<<<<":
            side = 0
        elif side is not None and marker.startswith("|||||||"):
            side = 1
        elif side is not None and marker == "=======":
            side = 2
        elif side is not None and (marker.startswith(">>>>>>> ") or marker == ">>>>>>>"):
            side = None
        elif side is None:
            sides = [s + line for s in sides]
        else:
            sides[side] += line
    return sides


def owned_files(out: Path) -> set[str]:
    """Files the last compile wrote, from its manifest (none if there is no manifest).

    After a merge that conflicted in the output, the manifest holds conflict markers;
    Kiln then owns every file that either side (or their base) listed, so that
    `kiln compile` regenerates the conflicted files instead of refusing to touch them.
    """
    try:
        text = (out / MANIFEST).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return set()
    versions = _conflict_sides(text) if "\n=======" in text else [text]
    owned: set[str] = set()
    for version in versions:
        try:
            owned |= set(json.loads(version)["files"])
        except (ValueError, KeyError, TypeError):
            continue
    return owned


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _atomic_write(path: Path, data: bytes, make_parent: bool = True) -> Stat:
    """Write `data` to a temporary file beside `path`, then rename it into place."""
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.kiln-tmp")
    try:
        stat = _write_new(str(temporary), data)
        os.replace(temporary, path)  # the same inode: the same size and mtime
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return stat


def _write_new(path: str, data: bytes) -> Stat:
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(handle, data)
        stat = os.fstat(handle)
    finally:
        os.close(handle)
    return stat.st_size, stat.st_mtime_ns


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _present_folders(out: Path, paths: Iterable[str]) -> set[str]:
    """The folders (relative, '' for `out`) holding `paths`, and their ancestors, that
    exist as folders now."""
    folders: set[str] = set()
    for parent in {_parent(p) for p in paths}:
        while parent not in folders:
            folders.add(parent)
            parent = _parent(parent)
    return {f for f in folders if os.path.isdir(out / f if f else out)}


def _new_roots(files: list[str], present: set[str]) -> dict[str, list[str]]:
    """Files whose folder does not exist yet, grouped under the top-most missing folder
    below the environment's: a model's folder, or a new folder of the output's top.

    Such a folder is written whole under a temporary name and renamed into place: one
    rename makes all its files appear at once, where renaming each file would double
    the file-system operations of a first compile. (Whole environment folders would
    be too few to share between processes.)
    """
    by_folder: dict[str, list[str]] = {}
    for path in files:
        by_folder.setdefault(_parent(path), []).append(path)
    roots: dict[str, list[str]] = {}
    for folder, inside in by_folder.items():  # thousands of folders, not 75,000 files
        if folder in present:
            continue
        parts = folder.split("/")
        root = next(
            "/".join(parts[: i + 1])
            for i in range(min(1, len(parts) - 1), len(parts))
            if "/".join(parts[: i + 1]) not in present
        )
        roots.setdefault(root, []).extend(inside)
    return roots


def _write_folder(
    out: Path, root: str, files: list[str], planned: dict[str, bytes], staged: bool = False
) -> dict[str, Stat]:
    """Write a folder that does not exist yet: fill a temporary one, rename it into place
    (or, `staged`, inside a tree that is itself temporary, fill it where it is)."""
    final = out / root
    temporary = final if staged else final.with_name(f".{final.name}.{os.getpid()}.kiln-tmp")
    try:
        for folder in sorted({_parent(p) for p in files}):
            (temporary / folder[len(root) + 1 :]).mkdir(parents=True, exist_ok=True)
        base = str(temporary)
        stats = {path: _write_new(base + path[len(root) :], planned[path]) for path in files}
        if not staged:
            os.rename(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return stats


def _write_all(
    out: Path, files: list[str], planned: dict[str, bytes], present: set[str], staged: bool = False
) -> dict[str, Stat]:
    roots = _new_roots(files, present)
    for parent in sorted({_parent(root) for root in roots}):
        (out / parent).mkdir(parents=True, exist_ok=True)
    # New folders are written by every core when there are many: creating files is
    # mostly the kernel's CPU time, which other cores share (measured on a RAM disk,
    # 75,000 files: 1.0 s in one process, 0.85 s in two on 2 cores).
    groups = sorted(roots.items())
    jobs = forking.jobs_wanted() if len(files) >= PARALLEL_WRITES else 1
    stats: dict[str, Stat] = {}

    def write(group: tuple[str, list[str]]) -> dict[str, Stat]:
        return _write_folder(out, *group, planned, staged)

    for written in forking.forked_each(groups, write, jobs):
        stats.update(written)
    in_place = {p for grouped in roots.values() for p in grouped}
    for path in files:
        if path not in in_place:
            stats[path] = _atomic_write(out / path, planned[path], make_parent=False)
    return stats


def _claim_text(paths: set[str]) -> bytes:
    """An interim manifest that owns `paths` (digests are filled in by the final one)."""
    unknown: dict[str, object] = {"sha256": "", "sources": []}  # one entry, shared
    files = dict.fromkeys(sorted(paths), unknown)
    document = {"files": files, "format": MANIFEST_FORMAT, "generator": "kiln", "specs": {}}
    return to_json(document).encode("utf-8")


def _prune_empty_parents(path: Path, out: Path) -> None:
    parent = path.parent
    while parent != out and out in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def _in_the_way(out: Path, missing: list[str], present: set[str]) -> list[str]:
    """Missing files Kiln cannot write: a folder stands at the file's path, or a
    file stands where one of its folders must go. Found before anything is
    written, so that such a compile writes nothing at all."""
    usable: dict[str, bool] = {"": True}
    base = str(out)

    def folder_usable(folder: str) -> bool:
        # Paths as strings, each folder asked once: a first compile has thousands.
        known = usable.get(folder)
        if known is None:
            where = f"{base}/{folder}"
            known = folder_usable(_parent(folder)) and (
                os.path.isdir(where) or not os.path.lexists(where)
            )
            usable[folder] = known
        return known

    blocked = []
    for path in missing:
        folder = _parent(path)
        if folder in present:
            if os.path.lexists(f"{base}/{path}"):
                blocked.append(path)
        elif not folder_usable(folder):
            blocked.append(path)
    return blocked


def _display(out: Path, relative: str) -> str:
    return (out / relative).as_posix()


def _planned(artifacts: list[Artifact], listed: list[Artifact] | None = None) -> dict[str, bytes]:
    """The bytes of each file to write, and of the manifest listing `listed` (by
    default the same artifacts)."""
    planned = {a.path: a.data for a in artifacts}
    planned[MANIFEST] = manifest_text(artifacts if listed is None else listed).encode("utf-8")
    return planned


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
            return _cannot_write(self.out, exc)
        return None

    def write(self, artifacts: list[Artifact]) -> dict[str, Stat]:
        """Write new files (of folders no other process writes files into)."""
        base = str(self.folder)
        for folder in sorted({_parent(a.path) for a in artifacts}):
            os.makedirs(f"{base}/{folder}", exist_ok=True)
        return {a.path: _write_new(f"{base}/{a.path}", a.data) for a in artifacts}

    def failed(self, exc: OSError) -> Diagnostic:
        return _cannot_write(self.out, exc)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _write_fresh(stage: Stage, files: list[str], planned: dict[str, bytes]) -> dict[str, Stat]:
    """Write what is not in `stage` yet, and the manifest, then rename it into place."""
    temporary = stage.folder
    try:
        stats = _write_all(temporary, files, planned, {""}, staged=True)
        stats[MANIFEST] = _write_new(str(temporary / MANIFEST), planned[MANIFEST])
        os.rename(temporary, stage.out)
    except BaseException:
        stage.discard()
        raise
    return stats


def emit(
    out: Path, artifacts: list[Artifact], mode: WriteBack, stage: Stage | None = None
) -> EmitReport:
    """Bring `out` in line with `artifacts`, or report how it differs.

    A `stage` (for an `out` that does not exist) holds the artifacts marked
    `written` already; `emit` writes the others and moves it into place.
    """
    report = EmitReport()
    if mode is WriteBack.YES and (stage is not None or not os.path.lexists(out)):
        if stage is None:
            stage = Stage.beside(out)
            problem = stage.create()
            if problem is not None:
                report.diagnostics.append(problem)
                return report
        written = {a.path: a.written for a in artifacts if a.written is not None}
        planned = _planned([a for a in artifacts if a.written is None], artifacts)
        files = sorted(p for p in planned if p != MANIFEST)
        try:
            report.stats = _write_fresh(stage, files, planned)
        except OSError as exc:
            report.diagnostics.append(_cannot_write(out, exc))
            return report
        report.stats.update(written)
        report.written.extend(sorted([*files, *written]))
        return report
    planned = _planned(artifacts)
    owned = owned_files(out)
    owned_or_manifest = owned | {MANIFEST}
    present = _present_folders(out, planned)
    # A file whose folder is not there is not there either: no need to try reading it.
    current = {p: _read(out / p) if _parent(p) in present else None for p in planned}
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
    blocked = _in_the_way(out, [p for p in changed if current[p] is None], present)
    if conflicts or blocked:
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
        report.diagnostics.extend(
            Diagnostic(
                _display(out, p),
                1,
                1,
                "KILN1901",
                "Kiln cannot write this file: a folder or file it did not write is in the way",
                hint="move it away, or compile to another --out",
            )
            for p in blocked
        )
        return report
    _apply(out, report, planned, changed, stale, owned, present)
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
        files = [p for p in changed if p != MANIFEST]
        if not owned.issuperset(files):
            # Claim the files before writing them: if a write fails half-way, the
            # next compile still knows they are Kiln's and rewrites them. (Files the
            # last manifest lists are Kiln's already.)
            claim = _claim_text(owned | set(files))
            _atomic_write(out / MANIFEST, claim)
            present.add("")
        report.stats = _write_all(out, files, planned, present)
        report.written.extend(files)
        for path in stale:
            (out / path).unlink()
            _prune_empty_parents(out / path, out)
            report.removed.append(path)
        if MANIFEST in changed or report.removed or files:
            report.stats[MANIFEST] = _atomic_write(out / MANIFEST, planned[MANIFEST])
    except OSError as exc:
        report.diagnostics.append(_cannot_write(out, exc))


def emit_changes(
    out: Path, changed: list[Artifact], stale: list[str], manifest: bytes | None, owned: set[str]
) -> EmitReport | None:
    """Write the `changed` files and the `manifest` (None: it is the same), delete the
    `stale` ones, in an output folder that is exactly as the last compile left it (the
    caller made sure: the incremental build). `owned` is what Kiln owns there. None,
    with nothing written, when a file Kiln does not own is in the way (a full compile
    reports it)."""
    planned = {a.path: a.data for a in changed}
    fresh = [p for p in planned if p not in owned]
    present = _present_folders(out, [*planned, MANIFEST])
    base = str(out)
    if any(_parent(p) in present and os.path.lexists(f"{base}/{p}") for p in fresh):
        return None
    if _in_the_way(out, [p for p in fresh if _parent(p) not in present], present):
        return None
    if manifest is not None:
        planned[MANIFEST] = manifest
    report = EmitReport()
    _apply(out, report, planned, sorted(planned), sorted(stale), owned, present)
    return report


def _cannot_write(out: Path, exc: OSError) -> Diagnostic:
    return Diagnostic(_display(out, ""), 1, 1, "KILN1903", f"cannot write output: {exc}")


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
