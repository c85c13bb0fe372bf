"""What the incremental build records of a successful compile, and reads back.

Beside the no-change record (`compiler.fingerprint`), a compile into an output
folder records, in the disk cache and keyed by that folder, each spec file's digest
and kind, and for each Model spec what building it gave: its diagnostics, where its
models are deployed, the kinds of its objects, its sources, and where its files'
entries sit in the manifest. The manifest itself (which the no-change record
vouches for) holds each model file's path and sha256, so they are not stored
twice; only the few Argo CD objects keep theirs here.
The next compile rebuilds only the Model specs whose inputs changed and takes the
rest from here (`compiler.incremental`).

Stored in `marshal` as plain tuples, a few per spec, so that reading the state of
1,000 models costs milliseconds. A state that cannot be read, or belongs to
another compile (its `inputs` differ from the no-change record's), means a full
compile. It is written before the no-change record, so that a compile stopped
between the two leaves them disagreeing.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from compiler import cache as disk_cache
from compiler.diagnostics import Diagnostic, Severity
from compiler.ir import ModelPlacement, Source
from compiler.parallel import SpecResult

STATES = "builds-1"
_FORMAT = 3
MODEL, FEATURESET = "Model", "FeatureSet"


class SpecFile(NamedTuple):
    """A file of the spec folder as the recorded compile saw it."""

    display: str  # the path diagnostics show ('' for a file that is not a spec)
    digest: str  # as `fingerprint.file_digests` takes it
    kind: str  # the spec's kind ('' for a file that is not a spec)
    ref: str  # a Model spec: the FeatureSet it uses; a FeatureSet: its name@version


class Chunk(NamedTuple):
    """The manifest entries of one model folder (one model in one environment): their
    paths are contiguous in the sorted manifest, so the manifest is assembled from
    chunks, not lines. `start` and `end` place them in the manifest's text."""

    first: str  # the first path
    last: str
    start: int
    end: int


@dataclass
class SpecRecord:
    """A Model spec's share of the recorded compile: `SpecResult` without the bytes."""

    result: SpecResult  # without its files: the manifest lists them (`chunks`)
    kinds: frozenset[tuple[str, str]]  # apiVersion and kind of its objects
    sources: dict[str, str]  # each spec its files come from -> digest
    chunks: list[Chunk]


@dataclass
class BuildState:
    inputs: str  # the fingerprint of the compile (as in its no-change record)
    compiler: str
    schemas: str
    specs_path: str
    files: dict[str, SpecFile]  # every file of the spec folder, by relative path
    models: dict[str, SpecRecord]  # every Model spec, by relative path
    gitops: dict[str, str]  # the Argo CD objects: path -> sha256


def model_folder(path: str) -> str:
    """The folder of a model's files in one environment (of the Argo CD objects: theirs)."""
    return "/".join(path.split("/", 2)[:2])


def spec_record(result: SpecResult) -> SpecRecord:
    """What to keep of a built Model spec; its manifest chunks are filled in later."""
    artifacts = result.artifacts
    return SpecRecord(
        SpecResult(
            result.path,
            result.name,
            result.problems,
            result.diagnostics,
            result.rendered,
            result.placements,
            [],
        ),
        frozenset(a.kind for a in artifacts if a.kind is not None),
        {s.file: s.digest for a in artifacts for s in a.sources},
        [],
    )


# --- plain tuples for marshal --------------------------------------------------------------


def _plain_diagnostics(diagnostics: Iterable[Diagnostic]) -> tuple[Any, ...]:
    return tuple(
        (d.file, d.line, d.col, d.code, d.message, d.severity.value, d.hint, d.environments)
        for d in diagnostics
    )


def _diagnostics(plain: Iterable[Any]) -> list[Diagnostic]:
    return [
        Diagnostic(f, ln, c, code, m, Severity(s), h, tuple(envs))
        for f, ln, c, code, m, s, h, envs in plain
    ]


def _plain_record(record: SpecRecord) -> tuple[Any, ...]:
    result = record.result
    return (
        result.path,
        result.name,
        _plain_diagnostics(result.problems),
        _plain_diagnostics(result.diagnostics),
        _plain_diagnostics(result.rendered),
        tuple((*p[:4], tuple(p.source)) for p in result.placements),
        record.kinds,
        record.sources,
        tuple(tuple(c) for c in record.chunks),
    )


def _record(plain: tuple[Any, ...]) -> SpecRecord:
    path, name, problems, diagnostics, rendered, placements, kinds, sources, chunks = plain
    return SpecRecord(
        SpecResult(
            path,
            name,
            _diagnostics(problems),
            _diagnostics(diagnostics),
            _diagnostics(rendered),
            [ModelPlacement(n, e, ns, local, Source(*s)) for n, e, ns, local, s in placements],
            [],
        ),
        kinds,
        sources,
        [Chunk(*c) for c in chunks],
    )


def _entry(out_key: str) -> str:
    return disk_cache.key("build-state", out_key)


def save(out_key: str, state: BuildState) -> None:
    """Record `state` for the output folder `out_key` names (a failure: no record)."""
    document = (
        _FORMAT,
        state.inputs,
        state.compiler,
        state.schemas,
        state.specs_path,
        {rel: tuple(f) for rel, f in state.files.items()},
        {rel: _plain_record(r) for rel, r in state.models.items()},
        state.gitops,
    )
    disk_cache.put(STATES, _entry(out_key), marshal.dumps(document))


def load(out_key: str) -> BuildState | None:
    """The recorded state; None when there is none or it cannot be read."""
    stored = disk_cache.get(STATES, _entry(out_key))
    if stored is None:
        return None
    try:
        form, inputs, compiler, schemas, specs_path, files, models, gitops = marshal.loads(stored)  # noqa: S302 HMAC-checked cache entry
        if form != _FORMAT:
            return None
        return BuildState(
            inputs,
            compiler,
            schemas,
            specs_path,
            {rel: SpecFile(*f) for rel, f in files.items()},
            {rel: _record(r) for rel, r in models.items()},
            gitops,
        )
    except (ValueError, EOFError, TypeError, KeyError, AttributeError):
        return None
