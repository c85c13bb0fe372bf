"""A file Kiln produces: where it goes, what it holds, and which specs made it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from compiler.diagnostics import Path_
from compiler.ir import Source

Stat = tuple[int, int]  # a written file's size and mtime in ns
# An artifact as it travels between processes, in `marshal` (which takes only plain
# types, and loads them several times faster than pickle loads dataclasses and
# named tuples): (path, data, digest, sources as plain tuples, origin, kind, written).
PlainSources = tuple[tuple[str, str], ...]
Packed = tuple[str, bytes, str, PlainSources, Path_, "tuple[str, str] | None", Stat | None]


@dataclass(eq=False, slots=True)
class Artifact:
    """Treated as immutable; not frozen, because a frozen dataclass sets each field
    through `object.__setattr__`, and a large tree builds 75,000 of them twice."""

    path: str  # relative to the output folder, '/'-separated
    data: bytes  # final bytes: UTF-8, LF line endings, ends with a newline
    sources: tuple[Source, ...]
    document: dict[str, Any] | None = None  # the object, for schema checks
    origin: Path_ = ()  # the spec node it mostly comes from (for diagnostics)
    kind: tuple[str, str] | None = None  # the object's apiVersion and kind
    digest: str = field(default="")  # sha256 of `data`, filled in when not given
    # Set when the process that made the file wrote it already, into a first
    # compile's staged output (`compiler.emit.Stage`): its stat. The bytes stayed
    # there, so `data` is empty.
    written: Stat | None = None

    def __post_init__(self) -> None:
        if not self.digest:
            self.digest = hashlib.sha256(self.data).hexdigest()

    @classmethod
    def text(cls, path: str, content: str, sources: tuple[Source, ...], **extra: Any) -> Artifact:
        return cls(path, content.encode("utf-8"), sources, **extra)

    @property
    def content(self) -> str:
        return self.data.decode("utf-8")

    def packed(self, written: Stat | None = None) -> Packed:
        """What another process needs to write and list the file (not the object);
        once `written`, what it needs to list it."""
        sources = tuple((s.file, s.digest) for s in self.sources)
        data = self.data if written is None else b""
        return (self.path, data, self.digest, sources, self.origin, self.kind, written)

    @classmethod
    def unpacked(cls, packed: Packed, known: dict[PlainSources, tuple[Source, ...]]) -> Artifact:
        """The artifact again; `known` shares one tuple of sources between the files
        that have the same (the manifest encodes each tuple once)."""
        path, data, digest, plain, origin, kind, written = packed
        sources = known.get(plain)
        if sources is None:
            sources = known[plain] = tuple(Source(*s) for s in plain)
        return cls(path, data, sources, None, origin, kind, digest, written)
