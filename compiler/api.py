"""The public API: validate and compile a spec tree. The CLI is a thin layer over it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from compiler.artifact import Artifact
from compiler.diagnostics import Diagnostic, has_errors
from compiler.emit import EmitReport, WriteBack, emit
from compiler.render import render_all
from compiler.resolve import Resolution, resolve


@dataclass
class CompileResult:
    resolution: Resolution
    artifacts: list[Artifact] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    report: EmitReport | None = None

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def build(specs: Path) -> CompileResult:
    """Load, parse, resolve and render, without touching any output."""
    resolution = resolve(specs)
    result = CompileResult(resolution, diagnostics=list(resolution.diagnostics))
    if not result.ok:
        return result
    artifacts, problems = render_all(resolution.models)
    result.diagnostics.extend(problems)
    if result.ok:
        result.artifacts = artifacts
    return result


def compile_tree(specs: Path, out: Path, mode: WriteBack = WriteBack.YES) -> CompileResult:
    """Compile `specs` into `out`; with any error, nothing is written."""
    result = build(specs)
    if not result.ok:
        return result
    result.report = emit(out, result.artifacts, mode)
    result.diagnostics.extend(result.report.diagnostics)
    return result
