"""What the incremental build records of a successful compile, and reads back.

Beside the no-change fingerprint (`compiler.fingerprint`), a compile into an output
folder records, in the disk cache and keyed by that folder, each spec file's digest
and kind, and for each Model spec what building it gave: its diagnostics, where its
models are deployed, its files' paths and digests, and their lines of the manifest.
The next compile rebuilds only the Model specs whose inputs changed and takes the
rest from here (`compiler.incremental`).

Stored in `marshal` as plain tuples, a few per spec (the files of a spec as one
string), so that reading the state of 1,000 models costs milliseconds. A state that
cannot be read, or belongs to another compile, means a full compile.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby
from typing import Any, NamedTuple

from compiler import cache as disk_cache
from compiler.artifact import Artifact
from compiler.diagnostics import Diagnostic, Severity
from compiler.emit import manifest_entries
from compiler.ir import ModelPlacement, Source
from compiler.parallel import SpecResult

STATES = "builds-1"
_FORMAT = 1
MODEL, FEATURESET = "Model", "FeatureSet"


class SpecFile(NamedTuple):
    """A file of the spec folder as the recorded compile saw it."""

    display: str  # the path diagnostics show ('' for a file that is not a spec)
    digest: str  # as `fingerprint.file_digests` takes it
    kind: str  # the spec's kind ('' for a file that is not a spec)
    ref: str  # a Model spec: the FeatureSet it uses; a FeatureSet: its name@version


class Chunk(NamedTuple):
    """Manifest entries of one model in one environment: their paths are contiguous
    in the sorted manifest, so the manifest is assembled from chunks, not lines."""

    first: str
    last: str
    text: str


@dataclass
class SpecRecord:
    """A Model spec's share of the recorded compile: `SpecResult` without the bytes."""

    result: SpecResult  # its artifacts hold no bytes: see `files`
    files_text: str  # path and sha256 of each file, NUL-separated: split when needed
    kinds: frozenset[tuple[str, str]]  # apiVersion and kind of its objects
    sources: dict[str, str]  # each spec its files come from -> digest
    chunks: list[Chunk]

    @property
    def files(self) -> dict[str, str]:
        """Path -> sha256 of each of its files."""
        split = self.files_text.split("\0") if self.files_text else []
        return dict(zip(split[0::2], split[1::2], strict=True))


@dataclass
class BuildState:
    inputs: str  # the fingerprint of the compile (as in its no-change record)
    compiler: str
    schemas: str
    specs_path: str
    files: dict[str, SpecFile]  # every file of the spec folder, by relative path
    models: dict[str, SpecRecord]  # each Model spec kept, by relative path
    gitops: dict[str, str]  # the Argo CD objects: path -> sha256


def chunks(artifacts: list[Artifact]) -> list[Chunk]:
    """The manifest entries of these files, a chunk per model folder."""
    entries = manifest_entries(artifacts)

    def folder(entry: tuple[str, str]) -> str:  # environment and model
        return "/".join(entry[0].split("/", 2)[:2])

    return [
        Chunk(group[0][0], group[-1][0], ",\n".join(text for _, text in group))
        for group in (list(g) for _, g in groupby(entries, key=folder))
    ]


def spec_record(result: SpecResult) -> SpecRecord:
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
        "\0".join(f"{a.path}\0{a.digest}" for a in artifacts),
        frozenset(a.kind for a in artifacts if a.kind is not None),
        {s.file: s.digest for a in artifacts for s in a.sources},
        chunks(artifacts),
    )


# --- plain tuples for marshal --------------------------------------------------------------


def _plain_diagnostics(diagnostics: Iterable[Diagnostic]) -> tuple[Any, ...]:
    return tuple(
        (d.file, d.line, d.col, d.code, d.message, d.severity.value, d.hint) for d in diagnostics
    )


def _diagnostics(plain: Iterable[Any]) -> list[Diagnostic]:
    return [Diagnostic(f, ln, c, code, m, Severity(s), h) for f, ln, c, code, m, s, h in plain]


def _plain_record(record: SpecRecord) -> tuple[Any, ...]:
    result = record.result
    return (
        result.path,
        result.name,
        _plain_diagnostics(result.problems),
        _plain_diagnostics(result.diagnostics),
        _plain_diagnostics(result.rendered),
        tuple((*p[:4], tuple(p.source)) for p in result.placements),
        record.files_text,
        tuple(sorted(record.kinds)),
        tuple(sorted(record.sources.items())),
        tuple(tuple(c) for c in record.chunks),
    )


def _record(plain: tuple[Any, ...]) -> SpecRecord:
    path, name, problems, diagnostics, rendered, placements, files, kinds, sources, chunks = plain
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
        files,
        frozenset(tuple(k) for k in kinds),
        dict(sources),
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
        form, inputs, compiler, schemas, specs_path, files, models, gitops = marshal.loads(stored)
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
