"""A file Kiln produces: where it goes, what it holds, and which specs made it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compiler.ir import Source
from compiler.load import Path_


@dataclass(frozen=True, eq=False)
class Artifact:
    path: str  # relative to the output folder, '/'-separated
    content: str  # final text, LF line endings, ends with a newline
    sources: tuple[Source, ...]
    document: dict[str, Any] | None = None  # the object, for schema checks
    origin: Path_ = ()  # the spec node it mostly comes from (for diagnostics)

    @property
    def data(self) -> bytes:
        return self.content.encode("utf-8")
