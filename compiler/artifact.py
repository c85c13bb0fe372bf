"""A file Kiln produces: where it goes, what it holds, and which specs made it."""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ir import Source


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the output folder, '/'-separated
    content: str  # final text, LF line endings, ends with a newline
    sources: tuple[Source, ...]

    @property
    def data(self) -> bytes:
        return self.content.encode("utf-8")
