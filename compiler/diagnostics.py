"""Diagnostics: what Kiln tells a person about their specs.

A user's mistake is never a traceback. Every stage reports problems as
`Diagnostic` records that name a file, a 1-based line and column, and a stable
code from `compiler.codes`; the CLI collects them all, sorts them and prints
them in one of three formats.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum

from compiler.codes import CODES
from runtime.contract.secrets import redact

# Where a problem is: a node's path in a spec document (keys and list indexes), and
# the 1-based line and column it is shown at. A locator maps the one to the other;
# its flag asks for the node's key rather than its value.
Path_ = tuple[str | int, ...]
Location = tuple[int, int]
Locator = Callable[[Path_, bool], Location]


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem, placed at the spec node that caused it."""

    file: str
    line: int
    col: int
    code: str
    message: str
    severity: Severity = Severity.ERROR
    hint: str = ""
    # The environments a Model spec's problem was found in; none for a problem of the
    # spec itself. `merge` makes one diagnostic of the same problem in several.
    environments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"undocumented diagnostic code {self.code}")
        # Whatever a stage quotes, no secret leaves in any format (text, JSON, GitHub
        # annotations, the plan): every one of them prints these two fields.
        object.__setattr__(self, "message", redact(self.message))
        object.__setattr__(self, "hint", redact(self.hint))

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def text(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.severity.value}[{self.code}]: {self.explained()}"

    def explained(self) -> str:
        """The message, what to do, and the environments it was found in."""
        text = self.message
        if self.hint:
            text += f" ({self.hint})"
        if self.environments:
            text += f" [environments: {', '.join(self.environments)}]"
        return text


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str, str]:
    return (diagnostic.file, diagnostic.line, diagnostic.col, diagnostic.code, diagnostic.message)


def merge(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The problems to show, sorted, each once: the same problem at the same place,
    found in several environments, becomes one diagnostic naming them all."""
    environments: dict[Diagnostic, set[str]] = {}
    for d in diagnostics:
        environments.setdefault(replace(d, environments=()), set()).update(d.environments)
    merged = [replace(d, environments=tuple(sorted(envs))) for d, envs in environments.items()]
    return sorted(merged, key=sort_key)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def _escape_github_data(value: str) -> str:
    # Workflow commands end at a newline and use % escapes for the message part.
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_github_property(value: str) -> str:
    # Property values additionally reserve ':' and ',' as separators.
    return _escape_github_data(value).replace(":", "%3A").replace(",", "%2C")


def format_github(diagnostic: Diagnostic) -> str:
    properties = ",".join(
        f"{key}={_escape_github_property(value)}"
        for key, value in (
            ("file", diagnostic.file),
            ("line", str(diagnostic.line)),
            ("col", str(diagnostic.col)),
            ("title", diagnostic.code),
        )
    )
    message = diagnostic.explained()
    return f"::{diagnostic.severity.value} {properties}::{_escape_github_data(message)}"


def format_json(diagnostics: Iterable[Diagnostic]) -> str:
    records = [
        {
            "file": d.file,
            "line": d.line,
            "col": d.col,
            "code": d.code,
            "severity": d.severity.value,
            "message": d.message,
            "hint": d.hint,
            "environments": list(d.environments),
        }
        for d in merge(diagnostics)
    ]
    return json.dumps({"diagnostics": records}, indent=2, ensure_ascii=False)


def render(diagnostics: Iterable[Diagnostic], fmt: str) -> str:
    ordered = merge(diagnostics)
    if fmt == "json":
        return format_json(ordered)
    if fmt == "github":
        return "\n".join(format_github(d) for d in ordered)
    return "\n".join(d.text() for d in ordered)


def summary(diagnostics: Iterable[Diagnostic]) -> str:
    """The count line: of the problems shown, so a problem found in several environments
    counts once, as `render` prints it once."""
    items = merge(diagnostics)
    errors = sum(1 for d in items if d.is_error)
    warnings = len(items) - errors
    return f"{errors} error(s), {warnings} warning(s)"
