"""A problem found in a spec object, placed by its path in the document."""

from __future__ import annotations

from dataclasses import dataclass

from compiler.diagnostics import Path_


@dataclass(frozen=True)
class Finding:
    path: Path_
    code: str
    message: str
    hint: str = ""
    key: bool = False  # place it at the key rather than the value
    warning: bool = False
