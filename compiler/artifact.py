"""A file Kiln produces: where it goes, what it holds, and which specs made it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from compiler.ir import Source
from compiler.load import Path_

# An artifact as it travels between processes: plain tuples pickle several times
# faster than dataclasses. (path, data, digest, sources, origin, kind)
Packed = tuple[str, bytes, str, tuple[Source, ...], Path_, "tuple[str, str] | None"]


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

    def __post_init__(self) -> None:
        if not self.digest:
            self.digest = hashlib.sha256(self.data).hexdigest()

    @classmethod
    def text(cls, path: str, content: str, sources: tuple[Source, ...], **extra: Any) -> Artifact:
        return cls(path, content.encode("utf-8"), sources, **extra)

    @property
    def content(self) -> str:
        return self.data.decode("utf-8")

    def packed(self) -> Packed:
        """What another process needs to write and list the file (not the object)."""
        return (self.path, self.data, self.digest, self.sources, self.origin, self.kind)

    @classmethod
    def unpacked(cls, packed: Packed) -> Artifact:
        path, data, digest, sources, origin, kind = packed
        return cls(path, data, sources, None, origin, kind, digest)
