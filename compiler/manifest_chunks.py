"""The manifest assembled from chunks, for the incremental build.

The manifest lists every file in path order, and a model's files in one environment
share the folder `environment/model/`, so their entries are contiguous: a chunk. An
incremental compile makes the chunks of the models it builds again, cuts the others
out of the last manifest (where its state says they are), and joins them in order.
The result is the text `compiler.emit.manifest_text` makes (tested against it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import groupby, pairwise
from typing import NamedTuple

from compiler.artifact import Artifact
from compiler.build_state import Chunk, model_folder
from compiler.emit import manifest_entries, manifest_from_entries

_SEPARATOR = b",\n"  # between two entries, as `manifest_from_entries` joins them
_MARK = "\0"  # stands for the entries, to cut the text around them out of the manifest


class Piece(NamedTuple):
    """A chunk's entries (UTF-8), and whose they are."""

    first: str
    last: str
    text: bytes
    owner: str  # a Model spec's relative path, or '' for the Argo CD objects


def pieces(artifacts: list[Artifact], owner: str) -> list[Piece]:
    """The chunks of these files' manifest entries, one per model folder."""
    grouped = groupby(manifest_entries(artifacts), key=lambda entry: model_folder(entry[0]))
    return [
        Piece(group[0][0], group[-1][0], ",\n".join(text for _, text in group).encode(), owner)
        for group in (list(g) for _, g in grouped)
    ]


def cut(manifest: bytes, chunks: Iterable[Chunk], owner: str) -> list[Piece]:
    """The chunks of the last manifest (its text), as pieces again."""
    return [Piece(c.first, c.last, manifest[c.start : c.end], owner) for c in chunks]


def files_of(manifest: bytes, chunks: Iterable[Chunk]) -> dict[str, str]:
    """Path -> sha256 of the files these chunks of the last manifest list."""
    files: dict[str, str] = {}
    for chunk in chunks:
        entries = json.loads(b"{" + manifest[chunk.start : chunk.end] + b"}")
        files.update((path, entry["sha256"]) for path, entry in entries.items())
    return files


def assemble(
    parts: list[Piece], specs: dict[str, str]
) -> tuple[bytes, dict[str, list[Chunk]]] | None:
    """The manifest, and where each owner's chunks now sit in it; None if two chunks
    interleave (not seen: then the incremental build gives way to a full compile).
    Made in bytes: the text around the entries is `manifest_from_entries`'s."""
    ordered = sorted(parts, key=lambda piece: piece.first)
    if any(before.last >= after.first for before, after in pairwise(ordered)):
        return None
    if not ordered:
        return manifest_from_entries([], specs).encode(), {}
    head, tail = manifest_from_entries([_MARK], specs).split(_MARK)
    start = len(head.encode())
    manifest = b"".join([head.encode(), _SEPARATOR.join(p.text for p in ordered), tail.encode()])
    placed: dict[str, list[Chunk]] = {}
    for piece in ordered:
        end = start + len(piece.text)
        placed.setdefault(piece.owner, []).append(Chunk(piece.first, piece.last, start, end))
        start = end + len(_SEPARATOR)
    return manifest, placed
