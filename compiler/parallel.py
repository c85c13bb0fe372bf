"""Render and check models on every core: the build is CPU-bound and each
(model, environment) renders independently of the others.

Worker processes are forked, so they inherit the resolved IR, the spec source
maps and the compiled schema validators instead of receiving them through a
pipe; only the finished artifacts and diagnostics travel back. Results come back
in model order and the caller sorts them, so the output does not depend on how
the work was split (tested: one process and several give identical bytes).

Forking is used only on Linux, for trees big enough to pay for it; `KILN_JOBS`
sets the number of processes (1 turns this off). See `compiler.forking`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from compiler.artifact import Artifact, Packed
from compiler.checks.manifests import ManifestProblem, check_manifests
from compiler.checks.schemas import SchemaSet
from compiler.diagnostics import Diagnostic
from compiler.forking import can_fork, forked_map, jobs_wanted
from compiler.ir import ModelIR
from compiler.load import Location, Path_
from compiler.render import render_model

# Below this many (model, environment) pairs, starting processes costs more than it saves.
MIN_PARALLEL = 48
CHUNKS_PER_JOB = 8  # small chunks even out the load between workers

Placer = Callable[[ModelIR, Path_], Location]
ProblemPlacer = Callable[[ManifestProblem], Diagnostic]


@dataclass
class Rendered:
    """What rendering and checking some models produced."""

    artifacts: list[Artifact] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unchecked: set[str] = field(default_factory=set)  # kinds seen without a schema

    def add(self, other: Rendered) -> None:
        self.artifacts.extend(other.artifacts)
        self.diagnostics.extend(other.diagnostics)
        self.unchecked |= other.unchecked


@dataclass(frozen=True)
class _Work:
    models: Sequence[ModelIR]
    place: Placer
    place_problem: ProblemPlacer
    schemas: SchemaSet | None
    keep_documents: bool


def _render(work: _Work, start: int, stop: int) -> Rendered:
    rendered = Rendered()
    for model in work.models[start:stop]:
        artifacts, diagnostics = render_model(model, work.place)
        problems = check_manifests(artifacts, work.schemas)
        rendered.diagnostics.extend(diagnostics)
        rendered.diagnostics.extend(work.place_problem(p) for p in problems)
        rendered.artifacts.extend(artifacts)
    if work.schemas is not None:
        rendered.unchecked = set(work.schemas.unchecked)
    return rendered


_INHERITED: _Work | None = None  # set in the parent just before forking

_Part = tuple[list[Artifact] | list[Packed], list[Diagnostic], set[str]]


def _render_in_worker(bounds: tuple[int, int]) -> _Part:
    assert _INHERITED is not None, "workers are forked after the work is set"
    rendered = _render(_INHERITED, *bounds)
    artifacts = rendered.artifacts
    if not _INHERITED.keep_documents:
        # The objects were needed for the checks only: send back just the files.
        return [a.packed() for a in artifacts], rendered.diagnostics, rendered.unchecked
    return artifacts, rendered.diagnostics, rendered.unchecked


def _received(part: _Part) -> Rendered:
    artifacts, diagnostics, unchecked = part
    return Rendered(
        [a if isinstance(a, Artifact) else Artifact.unpacked(a) for a in artifacts],
        diagnostics,
        unchecked,
    )


def _chunks(count: int, parts: int) -> list[tuple[int, int]]:
    size = max(1, -(-count // parts))
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def render_and_check(
    models: Sequence[ModelIR],
    place: Placer,
    place_problem: ProblemPlacer,
    schemas: SchemaSet | None,
    keep_documents: bool = True,
) -> Rendered:
    """Render every model and check its objects, in several processes when that pays."""
    global _INHERITED
    work = _Work(models, place, place_problem, schemas, keep_documents)
    jobs = jobs_wanted()
    if jobs == 1 or len(models) < MIN_PARALLEL or not can_fork():
        return _render(work, 0, len(models))
    # The first model renders here: it loads the validators each kind needs, so that
    # the workers inherit them instead of each loading its own.
    rendered = _render(work, 0, 1)
    bounds = [(1 + a, 1 + b) for a, b in _chunks(len(models) - 1, jobs * CHUNKS_PER_JOB)]
    _INHERITED = work
    try:
        parts = forked_map(_render_in_worker, bounds, jobs)
    finally:
        _INHERITED = None
    for part in parts:
        rendered.add(_received(part))
    return rendered
