"""Explain: which spec files and lines produced a generated file.

Every artifact records the spec node it mostly comes from (`origin`) and every
spec file it read (`sources`); the loader's source map turns both into lines.
A block's last line is the largest line recorded anywhere under its path, so a
block written over several lines is shown whole.
"""

from __future__ import annotations

import contextlib
import difflib
from pathlib import Path, PurePosixPath

from compiler.api import CompileResult
from compiler.artifact import Artifact
from compiler.diagnostics import Path_
from compiler.emit import MANIFEST, owned_files
from compiler.load import Document
from compiler.resolve import UnknownModel


class NotGenerated(Exception):
    """The path is not a file Kiln produces from these specs."""


def dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path) if path else "(the whole file)"


def _under(path: Path_, prefix: Path_) -> bool:
    return path[: len(prefix)] == prefix


def block_lines(document: Document, path: Path_) -> tuple[int, int] | None:
    """First and last line of the node at `path`, or None when the file does not hold it."""
    if path not in document.keys and path not in document.values:
        return None
    start = document.locate(path, key=True)[0]
    inside = [line for p, (line, _) in document.values.items() if _under(p, path)]
    inside += [line for p, (line, _) in document.keys.items() if _under(p, path)]
    return start, max([start, *inside])


def _span(document: Document, path: Path_) -> str:
    lines = block_lines(document, path)
    if lines is None:
        return f"{document.path}:{document.locate(path, key=True)[0]}"
    start, end = lines
    return f"{document.path}:{start}" if start == end else f"{document.path}:{start}-{end}"


def candidates(path: Path, out: Path) -> list[str]:
    """The output-relative names PATH may mean: under --out, or relative to it."""
    names: list[str] = []
    with contextlib.suppress(ValueError):  # not under --out
        names.append(path.resolve().relative_to(out.resolve()).as_posix())
    if not path.is_absolute():
        names.append(PurePosixPath(path.as_posix()).as_posix())
    return [n for i, n in enumerate(names) if n not in names[:i] and n != "."]


def _kind(document: Document) -> str:
    data = document.data
    kind = str(data.get("kind", "spec"))
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    spec = data.get("spec")
    if kind == "FeatureSet" and isinstance(spec, dict) and "version" in spec:
        name = f"{name}@{spec['version']}"
    return f"{kind} {name}" if name else kind


def _overlay(document: Document, environment: str, origin: Path_) -> list[str]:
    root: Path_ = ("spec", "environments", environment)
    if root not in document.keys:
        return []
    lines = [f"  overlay      {_span(document, root)}  {dotted(root)}"]
    depth = len(root)
    overridden = sorted(
        (p for p in document.keys if _under(p, root) and depth < len(p) <= depth + 2),
        key=lambda p: document.keys[p],
    )
    # A first-level key with children is shown through them.
    leaves = [p for p in overridden if not any(q != p and _under(q, p) for q in overridden)]
    for path in leaves:
        relative = ("spec", *path[depth:])
        touches = _under(relative, origin) or _under(origin, relative)
        mark = f"  (overrides part of {dotted(origin)})" if touches and origin else ""
        line = document.keys[path][0]
        lines.append(f"               line {line}: {dotted(path[depth:])}{mark}")
    return lines


def _describe(artifact: Artifact, out: Path, documents: dict[str, Document]) -> str:
    origin_file = artifact.sources[0].file
    document = documents[origin_file]
    shown = (out / artifact.path).as_posix()
    lines = [shown]
    where = block_lines(document, artifact.origin)
    note = "" if where is not None else "  (not written in the file: Kiln's defaults apply)"
    lines.append(
        f"  produced by  {_span(document, artifact.origin)}  {dotted(artifact.origin)}"
        f"  ({_kind(document)}){note}"
    )
    parts = PurePosixPath(artifact.path).parts
    if document.data.get("kind") == "Model" and len(parts) > 2:
        lines += _overlay(document, parts[0], artifact.origin)
    others = [s.file for s in artifact.sources[1:] if s.file != origin_file]
    for index, file in enumerate(others):
        label = "  also from    " if index == 0 else " " * 15
        other = documents.get(file)
        kind = f"  ({_kind(other)})" if other is not None else ""
        lines.append(f"{label}{file}{kind}")
    return "\n".join(lines) + "\n"


def _served_versions(result: CompileResult, artifact: Artifact) -> str:
    """For a model's file: the provenance of the versions it serves (compiler/provenance.py).

    A local environment also trusts this machine's key pair, as `kiln serve` does.
    """
    from compiler.provenance import provenance_lines
    from runtime.local.keys import existing_public_pem

    parts = PurePosixPath(artifact.path).parts
    if len(parts) < 3:
        return ""
    try:
        model = result.resolution.find(parts[1], parts[0])
    except UnknownModel:
        return ""  # not a model's file (the Argo CD objects)
    trust = model.environment.trust
    local_key = existing_public_pem() if model.is_local else None
    if local_key is not None:
        trust = trust.with_keys(local_key)
    return "\n".join(provenance_lines(model, result.resolution.root, trust)) + "\n"


def explain(result: CompileResult, path: Path, out: Path) -> str:
    """Which spec lines produced `path` (a file under `out`); NotGenerated if none did."""
    produced = {a.path: a for a in result.artifacts}
    names = candidates(path, out)
    for name in names:
        if name in produced:
            described = _describe(produced[name], out, result.resolution.documents)
            return described + _served_versions(result, produced[name])
        if name == MANIFEST:
            return (
                f"{(out / MANIFEST).as_posix()}\n  Kiln's list of the files it owns, with their "
                "sha256 and source specs; every `kiln compile` rewrites it from all specs\n"
            )
    owned = owned_files(out)
    stale = [n for n in names if n in owned]
    if stale:
        raise NotGenerated(
            f"{path.as_posix()} was written by an earlier compile, but no spec produces it any "
            "more: `kiln compile` removes it"
        )
    close = difflib.get_close_matches(names[0] if names else path.name, list(produced), n=1)
    hint = f"; did you mean {(out / close[0]).as_posix()}?" if close else ""
    raise NotGenerated(
        f"Kiln did not generate {path.as_posix()}: none of the {len(produced)} files the specs "
        f"produce under {out.as_posix()}/ is at that path{hint}"
    )
