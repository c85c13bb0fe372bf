"""What emit is asked to do, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from compiler.diagnostics import Diagnostic


class WriteBack(Enum):
    """The one switch between emit's modes, as Black's: write, check or diff."""

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
