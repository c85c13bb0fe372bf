"""Resolve, render and check models on every core: the build is CPU-bound and each
Model spec resolves and renders independently of the others.

Worker processes are forked, so they inherit the loaded specs, the resolved
Project and FeatureSets and the compiled schema validators instead of receiving
them through a pipe; only the finished files and diagnostics travel back. Results
come back in spec order and the caller sorts them, so the output does not depend
on how the work was split (tested: one process and several give identical bytes).

There are two ways in. `resolve_render_and_check` takes the Model specs the
resolver left pending and does everything for each, in the workers: what a
compile uses. `render_and_check` renders models resolved already, for callers
that keep the models and each file's object (`kiln plan`, `kiln explain`).

Forking is used only on Linux, for trees big enough to pay for it; `KILN_JOBS`
sets the number of processes (1 turns this off). See `compiler.forking`.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from compiler.artifact import Artifact, Packed, PlainSources
from compiler.checks.manifests import ManifestProblem, check_manifests
from compiler.checks.schemas import SchemaSet
from compiler.diagnostics import Diagnostic, Location, Path_
from compiler.emit import Stage
from compiler.forking import can_fork, forked_map, jobs_wanted
from compiler.ir import ModelIR, ModelPlacement, Source
from compiler.load import Document
from compiler.render import render_model
from compiler.resolve import Resolver

# Below this many (model, environment) pairs, starting processes costs more than it saves.
MIN_PARALLEL = 48
CHUNKS_PER_JOB = 8  # small chunks even out the load between workers

Placer = Callable[[ModelIR, Path_], Location]
ProblemPlacer = Callable[[ManifestProblem], Diagnostic]
R = TypeVar("R")


@dataclass
class Rendered:
    """What rendering and checking some models produced."""

    artifacts: list[Artifact] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unchecked: set[str] = field(default_factory=set)  # kinds seen without a schema
    # Where each model-environment rendered is deployed, by name then environment
    # (filled by `resolve_render_and_check`, whose caller has no models).
    placements: list[ModelPlacement] = field(default_factory=list)
    # Each kept Model spec's share, in spec order (filled by `resolve_render_and_check`):
    # what the incremental build records and reuses.
    specs: list[SpecResult] = field(default_factory=list)

    def add(self, other: Rendered) -> None:
        self.artifacts.extend(other.artifacts)
        self.diagnostics.extend(other.diagnostics)
        self.unchecked |= other.unchecked


@dataclass
class SpecResult:
    """What one Model spec contributed to a build: its diagnostics, in the order a
    build reports them, where its models are deployed, and its files."""

    path: str  # the spec's display path
    name: str
    problems: list[Diagnostic]  # parsing
    diagnostics: list[Diagnostic]  # resolving
    rendered: list[Diagnostic]  # rendering and checking
    placements: list[ModelPlacement]
    artifacts: list[Artifact]


@dataclass(frozen=True)
class _Checks:
    place: Placer
    place_problem: ProblemPlacer
    schemas: SchemaSet | None


def _render(models: Sequence[ModelIR], checks: _Checks) -> Rendered:
    rendered = Rendered()
    for model in models:
        artifacts, diagnostics = render_model(model, checks.place)
        problems = check_manifests(artifacts, checks.schemas)
        rendered.diagnostics.extend(diagnostics)
        rendered.diagnostics.extend(checks.place_problem(p) for p in problems)
        rendered.artifacts.extend(artifacts)
    if checks.schemas is not None:
        rendered.unchecked = set(checks.schemas.unchecked)
    return rendered


# --- sharing work between processes --------------------------------------------------------

_SHARE: Callable[[int, int], Any] | None = None  # set in the parent just before forking


def _run_share(bounds: tuple[int, int]) -> Any:
    assert _SHARE is not None, "workers are forked after the work is set"
    return _SHARE(*bounds)


def _chunks(count: int, parts: int) -> list[tuple[int, int]]:
    size = max(1, -(-count // parts))
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def _shared(work: Callable[[int, int], R], count: int, units: int) -> list[R]:
    """`work(start, stop)` over items 0..count, in order: in this process for little
    work (`units` model-environments), else in forked workers.

    The first item is done here first: it loads the validators each kind needs, so
    that the workers inherit them instead of each loading its own.
    """
    global _SHARE
    jobs = jobs_wanted()
    if jobs == 1 or units < MIN_PARALLEL or count < 2 or not can_fork():
        return [work(0, count)]
    first = work(0, 1)
    bounds = [(1 + a, 1 + b) for a, b in _chunks(count - 1, jobs * CHUNKS_PER_JOB)]
    _SHARE = work
    try:
        return [first, *forked_map(_run_share, bounds, jobs)]
    finally:
        _SHARE = None


# --- models resolved already ---------------------------------------------------------------


def render_and_check(
    models: Sequence[ModelIR],
    place: Placer,
    place_problem: ProblemPlacer,
    schemas: SchemaSet | None,
) -> Rendered:
    """Render every model and check its objects, in several processes when that pays;
    each artifact keeps its object."""
    checks = _Checks(place, place_problem, schemas)

    def work(start: int, stop: int) -> Rendered:
        return _render(models[start:stop], checks)

    rendered = Rendered()
    for part in _shared(work, len(models), len(models)):
        rendered.add(part)
    return rendered


# --- Model specs, resolved where they are rendered -----------------------------------------


@dataclass
class _SpecDone:
    """What a worker made of one Model spec: as `SpecOutcome`, with the files instead
    of the models (which would cost more to send back than to make). The files
    travel apart, in `marshal`."""

    name: str | None
    problems: list[Diagnostic]  # parsing
    diagnostics: list[Diagnostic]  # resolving
    rendered: list[Diagnostic]  # rendering and checking
    placements: list[ModelPlacement]


def resolve_render_and_check(
    resolver: Resolver,
    place: Placer,
    place_problem: ProblemPlacer,
    schemas: SchemaSet | None,
    render: bool,
    stage: Stage | None = None,
) -> Rendered:
    """Resolve the Model specs `resolver` left pending and, with `render`, render and
    check their models. Resolution diagnostics go to the resolver's result, as
    `resolve` leaves them; the rest is returned. Without `render` (something failed
    already) the specs are only resolved, for their diagnostics.

    With a `stage`, each spec's files are written into it where they are made, and
    come back without their bytes (see `Artifact.written`)."""
    checks = _Checks(place, place_problem, schemas)
    specs = resolver.pending
    context = resolver.context
    environments = len(context.spec.environments) if context is not None else 1

    def work(start: int, stop: int) -> tuple[list[_SpecDone], bytes, set[str]]:
        done = []
        files: list[list[Packed]] = []  # each spec's
        for document in specs[start:stop]:
            outcome = resolver.model_spec(document)
            rendered = _render(outcome.models, checks) if render else Rendered()
            files.append(_pack(rendered, stage))  # may add a diagnostic: first
            done.append(
                _SpecDone(
                    outcome.name,
                    outcome.problems,
                    outcome.diagnostics,
                    rendered.diagnostics,
                    [m.placement for m in outcome.models],
                )
            )
        unchecked = set(schemas.unchecked) if schemas is not None else set()
        return done, marshal.dumps(files), unchecked

    parts = _shared(work, len(specs), len(specs) * environments)
    result = _gather(resolver, specs, parts)
    for _, _, unchecked in parts:
        result.unchecked |= unchecked
    result.placements.sort()
    return result


def _gather(
    resolver: Resolver,
    specs: list[Document],
    parts: list[tuple[list[_SpecDone], bytes, set[str]]],
) -> Rendered:
    """What the workers sent back, for the specs `resolver.accept` keeps (the first of
    each model name), in the order of the specs."""
    done = [spec for specs_done, _, _ in parts for spec in specs_done]
    files = [spec for _, blob, _ in parts for spec in marshal.loads(blob)]  # noqa: S302 from our own workers
    kept = resolver.accept([(d, s.name, s.problems) for d, s in zip(specs, done, strict=True)])
    result = Rendered()
    known: dict[PlainSources, tuple[Source, ...]] = {}
    for document, spec, packed, keep in zip(specs, done, files, kept, strict=True):
        if not keep:
            continue
        assert spec.name is not None  # only a spec that parsed is kept
        artifacts = [Artifact.unpacked(f, known) for f in packed]
        resolver.report(spec.diagnostics)
        result.diagnostics.extend(spec.rendered)
        result.artifacts.extend(artifacts)
        result.placements.extend(spec.placements)
        result.specs.append(
            SpecResult(
                document.path,
                spec.name,
                spec.problems,
                spec.diagnostics,
                spec.rendered,
                spec.placements,
                artifacts,
            )
        )
    return result


def _pack(rendered: Rendered, stage: Stage | None) -> list[Packed]:
    """A spec's files to send back; with a `stage`, written there first (a failure
    to write is a diagnostic of the spec, and leaves nothing to send)."""
    artifacts = rendered.artifacts
    if stage is None or not artifacts:
        return [a.packed() for a in artifacts]
    try:
        stats = stage.write(artifacts)
    except OSError as exc:
        rendered.diagnostics.append(stage.failed(exc))
        return []
    return [a.packed(stats[a.path]) for a in artifacts]
