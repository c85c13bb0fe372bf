"""What resolving gives: the result of a spec tree, the outcome of one Model spec,
and the placing of a rule's findings as diagnostics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from compiler.codes import advice
from compiler.diagnostics import Diagnostic, Locator, Severity
from compiler.ir import ModelIR, ProjectIR
from compiler.load import Document
from compiler.rules.findings import Finding


@dataclass
class Resolution:
    """What resolving a spec tree produced."""

    root: Path
    project: ProjectIR | None = None
    models: list[ModelIR] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    documents: dict[str, Document] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    def find(self, name: str, environment: str) -> ModelIR:
        """The model `name` in `environment`; UnknownModel says what exists instead."""
        for model in self.models:
            if model.name == name and model.environment.name == environment:
                return model
        errors = [d for d in self.diagnostics if d.is_error]
        if errors:
            first = errors[0]
            raise UnknownModel(
                f"no usable model {name!r} in environment {environment!r}: the specs have "
                f"{len(errors)} error(s), e.g. {first.file}:{first.line}: {first.message}; "
                "run `kiln validate`"
            )
        if all(m.name != name for m in self.models):
            known = sorted({f"{m.name} ({m.environment.name})" for m in self.models})
            raise UnknownModel(
                f"no model {name!r} in environment {environment!r}; known: {_listed(known)}"
            )
        environments = sorted({m.environment.name for m in self.models if m.name == name})
        raise UnknownModel(
            f"model {name!r} has no environment {environment!r}; known: {', '.join(environments)}"
        )


def _listed(names: list[str], most: int = 10) -> str:
    """The first `most` names, and how many more: a tree of a thousand models must not
    print three thousand names for one typo."""
    if not names:
        return "none"
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


class UnknownModel(LookupError):
    """No model of that name in that environment; the message lists what there is."""


@dataclass
class SpecOutcome:
    """What parsing and resolving one Model spec gave."""

    name: str | None  # None when the spec did not parse
    problems: list[Diagnostic]  # from parsing: reported even when the name is taken
    diagnostics: list[Diagnostic]  # from resolving
    models: list[ModelIR]  # one per environment that resolved


def place(
    findings: list[Finding], file: str, locate: Locator, environment: str | None = None
) -> list[Diagnostic]:
    """The findings of a rule as diagnostics of `file`, at the lines `locate` gives;
    `environment`: the one they were found in, when they depend on it."""
    environments = () if environment is None else (environment,)
    placed = []
    for finding in findings:
        line, col = locate(finding.path, finding.key)
        severity = Severity.WARNING if finding.warning else Severity.ERROR
        placed.append(
            Diagnostic(
                file,
                line,
                col,
                finding.code,
                finding.message,
                severity,
                finding.hint or advice(finding.code),
                environments,
            )
        )
    return placed
