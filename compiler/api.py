"""The public API: validate and compile a spec tree. The CLI is a thin layer over it."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from compiler import build_state, fingerprint, incremental
from compiler.artifact import Artifact
from compiler.checks.manifests import ManifestProblem, check_manifests
from compiler.checks.schemas import SchemaSet, UnknownKind, schema_folder
from compiler.diagnostics import Diagnostic, Location, Path_, has_errors
from compiler.emit import MANIFEST, EmitReport, Stage, WriteBack, emit, emit_changes
from compiler.emit.files import read
from compiler.fingerprint import Record
from compiler.ir import ModelIR, ModelPlacement
from compiler.load import Document
from compiler.parallel import (
    Placer,
    ProblemPlacer,
    Rendered,
    SpecResult,
    render_and_check,
    resolve_render_and_check,
)
from compiler.render import render_gitops
from compiler.resolve import Resolution, Resolver, resolve


@dataclass
class CompileResult:
    resolution: Resolution
    artifacts: list[Artifact] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    report: EmitReport | None = None
    unchecked_kinds: list[str] = field(default_factory=list)
    up_to_date: bool = False  # nothing changed since the last compile: nothing was built
    model_environments: int = 0  # every (model, environment) when all is well
    # Rendered by this compile: all of them, unless it was `incremental` (built again
    # only the Model specs whose inputs changed: see `compiler.incremental`).
    rebuilt: int = 0
    incremental: bool = False
    # What each Model spec and the Argo CD objects gave, for the incremental build's record.
    specs: list[SpecResult] = field(default_factory=list, repr=False)
    gitops: list[Artifact] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def _schema_set(resolution: Resolution, schemas: Path | None) -> SchemaSet | None:
    if resolution.project is None:
        return None
    return SchemaSet(resolution.project.kubernetes_version, schema_folder(schemas))


@contextmanager
def _sparse_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while compiling.

    A compile allocates millions of small objects that reference counting frees; at
    the default threshold the collector runs thousands of times over a heap that
    grows with the tree (measured: nearly half of the resolve time for 1000 models).
    """
    threshold = gc.get_threshold()
    gc.set_threshold(100_000, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def build(
    specs: Path,
    schemas: Path | None = None,
    keep_documents: bool = True,
    stage: Stage | None = None,
) -> CompileResult:
    """Load, parse, resolve, render and check, without touching any output.

    With `keep_documents` (`kiln plan`, `kiln explain`, tests) the result holds the
    resolved models and each artifact's object. Without (what `compile_tree` needs:
    the bytes), each Model spec is resolved in the worker process that renders it,
    and the result's resolution holds no models: `model_environments` counts them.
    Then a `stage` (a first compile's output, see `compiler.emit.Stage`) receives
    each model's files as they are made: those artifacts hold no bytes.
    """
    with _sparse_collections():
        if keep_documents:
            assert stage is None, "files are staged only when objects are not kept"
            return _build_keeping(specs, schemas)
        return _build_files(specs, schemas, stage)


def _placers(documents: dict[str, Document]) -> tuple[Placer, ProblemPlacer]:
    def place(model: ModelIR, path: Path_) -> Location:
        return documents[model.source.file].locate(path)

    def place_problem(problem: ManifestProblem) -> Diagnostic:
        return _place_problem(problem, documents)

    return place, place_problem


def _checked_schema_set(
    resolution: Resolution, schemas: Path | None
) -> tuple[SchemaSet | None, Diagnostic | None]:
    """The schemas to check against, or the diagnostic for a Kubernetes version that
    has none."""
    schema_set = _schema_set(resolution, schemas)
    try:
        if schema_set is not None:
            schema_set.check_version()
    except UnknownKind as exc:  # the Project names a Kubernetes version we have no schemas for
        assert resolution.project is not None  # a schema set needs one
        file = resolution.project.source.file
        line, col = resolution.documents[file].locate(("spec", "kubernetes_version"))
        return None, Diagnostic(file, line, col, "KILN1803", str(exc))
    return schema_set, None


def _finish(
    result: CompileResult,
    rendered: Rendered,
    placements: list[ModelPlacement],
    schema_set: SchemaSet | None,
) -> CompileResult:
    """Add the Argo CD objects and everything found, and the files when all is well."""
    resolution = result.resolution
    assert resolution.project is not None  # resolution succeeded
    gitops = render_gitops(resolution.project, placements, rendered.artifacts)
    found = check_manifests(gitops, schema_set)
    result.diagnostics.extend(rendered.diagnostics)
    _, place_problem = _placers(resolution.documents)
    result.diagnostics.extend(place_problem(p) for p in found)
    result.model_environments = result.rebuilt = len(placements)
    result.gitops = gitops
    if schema_set is not None:
        result.unchecked_kinds = sorted(schema_set.unchecked | rendered.unchecked)
    if result.ok:
        result.artifacts = sorted(rendered.artifacts + gitops, key=lambda a: a.path)
    return result


def _build_keeping(specs: Path, schemas: Path | None) -> CompileResult:
    resolution = resolve(specs)
    result = CompileResult(resolution, diagnostics=list(resolution.diagnostics))
    if not result.ok:
        return result
    schema_set, version_problem = _checked_schema_set(resolution, schemas)
    if version_problem is not None:
        result.diagnostics.append(version_problem)
        return result
    place, place_problem = _placers(resolution.documents)
    rendered = render_and_check(resolution.models, place, place_problem, schema_set)
    placements = [m.placement for m in resolution.models]
    return _finish(result, rendered, placements, schema_set)


def _build_files(specs: Path, schemas: Path | None, stage: Stage | None) -> CompileResult:
    resolver = Resolver(specs)
    resolution = resolver.run()
    schema_set, version_problem = None, None
    if resolution.ok and resolution.project is not None:
        schema_set, version_problem = _checked_schema_set(resolution, schemas)
    # Model specs are resolved whatever happened before, for their diagnostics; they
    # are rendered only when nothing has failed yet.
    render = resolution.ok and resolution.project is not None and version_problem is None
    place, place_problem = _placers(resolution.documents)
    rendered = resolve_render_and_check(resolver, place, place_problem, schema_set, render, stage)
    result = CompileResult(resolution, diagnostics=list(resolution.diagnostics))
    if not result.ok:
        return result  # as `resolve` reports it: nothing rendered is shown
    if version_problem is not None:
        result.diagnostics.append(version_problem)
        return result
    result.specs = rendered.specs
    return _finish(result, rendered, rendered.placements, schema_set)


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
    output is untouched since) is skipped: see `compiler.fingerprint`; one whose
    inputs changed builds again only what the change affects, when it can: see
    `compiler.incremental`. `--check` and `--diff` always build everything.
    """
    with _sparse_collections():
        return _compile_tree(specs, out, mode, schemas, force)


def _compile_tree(
    specs: Path, out: Path, mode: WriteBack, schemas: Path | None, force: bool
) -> CompileResult:
    schemas = schema_folder(schemas)
    shortcut = mode is WriteBack.YES and not force
    inputs = fingerprint.read_inputs(specs, schemas) if shortcut else None
    if inputs is not None:
        record = fingerprint.load_record(out)
        if record is not None and record.untouched(out):
            if record.inputs == inputs.fingerprint:
                result = CompileResult(Resolution(root=specs.resolve().parent), up_to_date=True)
                result.report = EmitReport(unchanged=len(record.files))
                return result
            updated = _compile_changes(specs, out, schemas, inputs, record)
            if updated is not None:
                return updated
    # A first compile: the workers write each model's folder into a stage as they go.
    # (If the stage cannot be made, the specs are still checked, and emit reports why.)
    stage = Stage.beside(out) if mode is WriteBack.YES and not os.path.lexists(out) else None
    if stage is not None and stage.create() is not None:
        stage = None
    try:
        result = build(specs, schemas, keep_documents=False, stage=stage)
        if not result.ok:
            return result
        result.report = emit(out, result.artifacts, mode, stage)
    finally:
        if stage is not None:
            stage.discard()  # gone already when emit moved it into place
    result.diagnostics.extend(result.report.diagnostics)
    if inputs is not None and result.ok:
        owned = [a.path for a in result.artifacts] + [MANIFEST]
        # The state first: a record beside an older state is not trusted (build_state).
        manifest = _read_manifest(out)
        state = incremental.state_of_full_compile(
            specs, inputs, result.resolution.documents, result.specs, result.gitops, manifest
        )
        if state is not None:
            build_state.save(fingerprint.output_key(out), state)
        fingerprint.record(out, inputs.fingerprint, owned, result.report.stats)
    return result


def _read_manifest(out: Path) -> bytes | None:
    try:
        return read(out / MANIFEST)
    except OSError:
        return None


def _compile_changes(
    specs: Path, out: Path, schemas: Path | None, inputs: fingerprint.Inputs, record: Record
) -> CompileResult | None:
    """Compile into `out`, which is as the last compile left it (`record`), building
    again only what the changes since then affect; None for a full compile instead:
    when the change is not one this takes on, or anything goes wrong (see
    `compiler.incremental`)."""
    state = build_state.load(fingerprint.output_key(out))
    if state is None or state.inputs != record.inputs:
        return None
    update = incremental.plan(specs, inputs, state)
    if update is None:
        return None
    resolver = Resolver(specs)
    resolution = resolver.run((update.loaded, []))
    if not resolution.ok or resolution.project is None:
        return None
    schema_set, version_problem = _checked_schema_set(resolution, schemas)
    if schema_set is None or version_problem is not None:
        return None
    found = list(resolution.diagnostics)  # the Project's and FeatureSets', all warnings
    place, place_problem = _placers(resolution.documents)
    rendered = resolve_render_and_check(resolver, place, place_problem, schema_set, True)
    if not resolution.ok or has_errors(rendered.diagnostics):
        return None
    merged = incremental.merge(update, rendered.specs)
    if merged is None:
        return None
    gitops = render_gitops(resolution.project, merged.placements, merged.kind_samples())
    if check_manifests(gitops, schema_set):
        return None  # errors all: a full compile reports them
    changes = incremental.changes(out, state, update, merged, gitops)
    if changes is None:
        return None
    owned = set(record.files) - {MANIFEST}
    report = emit_changes(out, changes.write, changes.stale, changes.manifest, owned)
    if report is None:
        return None
    result = CompileResult(resolution, report=report, incremental=True)
    result.diagnostics = [*found, *merged.diagnostics(), *report.diagnostics]
    result.model_environments = len(merged.placements)
    result.rebuilt = len(rendered.placements)
    result.unchecked_kinds = sorted(merged.unchecked(schema_set) | rendered.unchecked)
    if result.ok:
        files = changes.files_after(record.files, report.stats)
        report.unchanged = len(files) - len(report.written) - (MANIFEST in report.stats)
        build_state.save(fingerprint.output_key(out), merged.state(inputs, specs, gitops))
        fingerprint.record_stats(out, inputs.fingerprint, files)
    return result
