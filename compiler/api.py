"""The public API: validate and compile a spec tree. The CLI is a thin layer over it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from compiler import fingerprint
from compiler.artifact import Artifact
from compiler.checks.manifests import ManifestProblem, check_manifests
from compiler.checks.schemas import SchemaSet, UnknownKind, schema_folder
from compiler.diagnostics import Diagnostic, has_errors
from compiler.emit import EmitReport, WriteBack, emit
from compiler.ir import ModelIR
from compiler.load import Document, Location, Path_
from compiler.render import render_all
from compiler.resolve import Resolution, resolve


@dataclass
class CompileResult:
    resolution: Resolution
    artifacts: list[Artifact] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    report: EmitReport | None = None
    unchecked_kinds: list[str] = field(default_factory=list)
    up_to_date: bool = False  # nothing changed since the last compile: nothing was built

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def _schema_set(resolution: Resolution, schemas: Path | None) -> SchemaSet | None:
    if resolution.project is None:
        return None
    return SchemaSet(resolution.project.kubernetes_version, schema_folder(schemas))


def build(specs: Path, schemas: Path | None = None) -> CompileResult:
    """Load, parse, resolve, render and check, without touching any output."""
    resolution = resolve(specs)
    result = CompileResult(resolution, diagnostics=list(resolution.diagnostics))
    if not result.ok:
        return result
    documents = resolution.documents

    def place(model: ModelIR, path: Path_) -> Location:
        return documents[model.source.file].locate(path)

    assert resolution.project is not None  # resolution succeeded
    artifacts, problems = render_all(resolution.project, resolution.models, place)
    result.diagnostics.extend(problems)
    schema_set = _schema_set(resolution, schemas)
    try:
        if schema_set is not None:
            schema_set.check_version()
    except UnknownKind as exc:  # the Project names a Kubernetes version we have no schemas for
        file = resolution.project.source.file
        line, col = documents[file].locate(("spec", "kubernetes_version"))
        result.diagnostics.append(Diagnostic(file, line, col, "KILN1803", str(exc)))
        return result
    found = check_manifests(artifacts, schema_set)
    result.diagnostics.extend(_place_problem(p, documents) for p in found)
    if schema_set is not None:
        result.unchecked_kinds = sorted(schema_set.unchecked)
    if result.ok:
        result.artifacts = artifacts
    return result


def _place_problem(problem: ManifestProblem, documents: dict[str, Document]) -> Diagnostic:
    artifact = problem.artifact
    file = artifact.sources[0].file
    document = documents.get(file)
    line, col = document.locate(artifact.origin) if document is not None else (1, 1)
    return Diagnostic(
        file,
        line,
        col,
        "KILN1803",
        f"generated {artifact.path}: {problem.path}: {problem.message}",
    )


def compile_tree(
    specs: Path,
    out: Path,
    mode: WriteBack = WriteBack.YES,
    schemas: Path | None = None,
    force: bool = False,
) -> CompileResult:
    """Compile `specs` into `out`; with any error, nothing is written.

    Unless `force`, a compile whose inputs match the last one into `out` (and whose
    output is untouched since) is skipped: see `compiler.fingerprint`.
    """
    schemas = schema_folder(schemas)
    shortcut = mode is WriteBack.YES and not force
    inputs = fingerprint.inputs(specs, schemas) if shortcut else None
    if inputs is not None:
        files = fingerprint.unchanged(out, inputs)
        if files is not None:
            result = CompileResult(Resolution(root=specs.resolve().parent), up_to_date=True)
            result.report = EmitReport(unchanged=files)
            return result
    result = build(specs, schemas)
    if not result.ok:
        return result
    result.report = emit(out, result.artifacts, mode)
    result.diagnostics.extend(result.report.diagnostics)
    if inputs is not None and result.ok:
        fingerprint.record(out, inputs)
    return result
