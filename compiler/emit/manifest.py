"""The manifest, `kiln-manifest.json`: its text, and the files it says Kiln owns.

The manifest lists every file of the last compile with its sha256 and source specs,
and each spec's digest. Kiln owns exactly the files it lists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from operator import attrgetter
from pathlib import Path

from compiler.artifact import Artifact
from compiler.emit.files import read
from compiler.ir import Source
from compiler.serialize import to_json

MANIFEST = "kiln-manifest.json"
MANIFEST_FORMAT = 1


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


def planned_files(
    artifacts: list[Artifact], listed: list[Artifact] | None = None
) -> dict[str, bytes]:
    """The bytes of each file to write, and of the manifest listing `listed` (by
    default the same artifacts)."""
    planned = {a.path: a.data for a in artifacts}
    planned[MANIFEST] = manifest_text(artifacts if listed is None else listed).encode("utf-8")
    return planned


def claim_text(paths: set[str]) -> bytes:
    """An interim manifest that owns `paths` (digests are filled in by the final one)."""
    unknown: dict[str, object] = {"sha256": "", "sources": []}  # one entry, shared
    files = dict.fromkeys(sorted(paths), unknown)
    document = {"files": files, "format": MANIFEST_FORMAT, "generator": "kiln", "specs": {}}
    return to_json(document).encode("utf-8")


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


def owned_files(out: Path) -> dict[str, set[str]]:
    """Files the last compile wrote, from its manifest, each with the sha256 it recorded
    (none if there is no manifest).

    The manifest comes from the checkout, so it is not trusted: an entry that is not a
    plain relative path inside the output folder is ignored (see `refused_entries`).
    After a merge that conflicted in the output, the manifest holds conflict markers;
    Kiln then owns every file that either side (or their base) listed, with the digest
    each side recorded, so that `kiln compile` regenerates the conflicted files instead
    of refusing to touch them.
    """
    owned: dict[str, set[str]] = {}
    for path, digest in _listed(out):
        if inside_output(path):
            owned.setdefault(path, set()).add(digest)
    return owned


def refused_entries(out: Path) -> list[str]:
    """The manifest's entries that are not paths inside the output folder, sorted."""
    return sorted({path for path, _ in _listed(out) if not inside_output(path)})


def inside_output(path: str) -> bool:
    """Whether a manifest entry names a file inside the output folder: relative, with
    '/' between parts, normalised (no '', '.' or '..' part), not the manifest itself."""
    if not path or path == MANIFEST or "\\" in path or "\0" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _listed(out: Path) -> list[tuple[str, str]]:
    """Every (path, sha256) the manifest lists, on any side of a merge conflict."""
    data = read(out / MANIFEST)
    try:
        text = "" if data is None else data.decode("utf-8")
    except ValueError:
        return []
    versions = _conflict_sides(text) if "\n=======" in text else [text]
    listed: list[tuple[str, str]] = []
    for version in versions:
        try:
            entries = json.loads(version)["files"]
            listed.extend((str(p), str(e.get("sha256", ""))) for p, e in entries.items())
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return listed


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
