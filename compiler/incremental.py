"""The incremental build: which Model specs to build again, from what changed.

A Model spec's files depend on its own bytes, the Project, the FeatureSet it names
(name@version), Kiln itself and its local model files, of which only those inside
the spec folder are seen (see the fall-backs). So, against the state the last
compile recorded (`compiler.build_state`):

- a changed or new Model spec is built again; a deleted one loses its files;
- a changed, new or deleted FeatureSet builds again every Model spec that names
  the old or the new name@version;
- anything else falls back to a full compile (`plan` returns None): Kiln, a
  library or the schema folder changed, the spec folder moved, the Project or a
  spec of another kind changed, appeared or went, a file that is not a spec
  (a model artifact, a hidden file) changed, appeared or went, or a changed spec
  does not load. So does any error found on the way (`compiler.api`), so that its
  diagnostics are exactly a full compile's.

Everything that depends on every model (the Argo CD objects, the manifest, the
duplicate-name check) is made again from all of them, recorded or rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from compiler import manifest_chunks as chunks
from compiler.artifact import Artifact, Stat
from compiler.build_state import FEATURESET, MODEL, BuildState, SpecFile, SpecRecord, spec_record
from compiler.checks.schemas import SchemaSet
from compiler.diagnostics import Diagnostic
from compiler.emit import MANIFEST, manifest_sources
from compiler.emit.files import read
from compiler.fingerprint import Inputs
from compiler.ir import ModelPlacement
from compiler.load import SPEC_SUFFIXES, Document, display_path, load_text
from compiler.parallel import SpecResult


@dataclass
class Update:
    """What to build again, and what to take from the recorded state."""

    files: dict[str, SpecFile]  # the spec folder now, by relative path
    loaded: list[Document]  # for the resolver: the Project, FeatureSets, Model specs to build
    rebuilt: list[str]  # relative paths of the Model specs to build again
    kept: dict[str, SpecRecord]  # the Model specs taken as recorded
    dropped: list[SpecRecord]  # recorded Model specs replaced or deleted


def _featureset_ref(data: dict[str, object]) -> str:
    metadata, spec = data.get("metadata"), data.get("spec")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    version = spec.get("version") if isinstance(spec, dict) else None
    return f"{name}@{version}"


def _model_ref(data: dict[str, object]) -> str:
    spec = data.get("spec")
    features = spec.get("features") if isinstance(spec, dict) else None
    return features if isinstance(features, str) else ""


def describe(document: Document, digest: str) -> SpecFile:
    """How the state records a spec file."""
    kind = document.data.get("kind")
    kind = kind if isinstance(kind, str) else ""
    ref = ""
    if kind == MODEL:
        ref = _model_ref(document.data)
    elif kind == FEATURESET:
        ref = _featureset_ref(document.data)
    return SpecFile(document.path, digest, kind, ref)


def _load(specs: Path, relative: str, display: str) -> Document | None:
    try:
        raw = (specs / relative).read_bytes()
    except OSError:
        return None
    document, problems = load_text(display, raw)
    return document if not problems else None


class _FullCompile(Exception):
    """This change is one the incremental build does not take on."""


class _Planner:
    def __init__(self, specs: Path, inputs: Inputs, state: BuildState) -> None:
        self.specs, self.inputs, self.state = specs, inputs, state
        self.root = specs.resolve().parent
        self.files: dict[str, SpecFile] = {}
        self.documents: dict[str, Document] = {}  # loaded, by relative path
        self.refs: set[str] = set()  # FeatureSets changed, added or deleted

    def is_spec(self, relative: str) -> bool:
        """Whether a new file is one the compile reads as a spec: a `.yaml` or `.yml` file
        in no hidden folder (as `discover` chooses them, without walking the folder)."""
        path = PurePosixPath(relative)
        return path.suffix in SPEC_SUFFIXES and not any(p.startswith(".") for p in path.parts)

    def load(self, relative: str, display: str) -> Document:
        document = _load(self.specs, relative, display)
        if document is None:
            raise _FullCompile
        self.documents[relative] = document
        return document

    def deleted(self, old: SpecFile) -> None:
        if old.kind == FEATURESET:
            self.refs.add(old.ref)
        elif old.kind != MODEL:
            raise _FullCompile

    def changed(self, relative: str, digest: str, old: SpecFile | None) -> None:
        if old is not None:
            self.deleted(old)
        elif not self.is_spec(relative):
            raise _FullCompile
        display = old.display if old else display_path(self.specs / relative, self.root)
        now = describe(self.load(relative, display), digest)
        if now.kind == FEATURESET:
            self.refs.add(now.ref)
        elif now.kind != MODEL:
            raise _FullCompile
        self.files[relative] = now

    def plan(self) -> Update:
        state, now = self.state, self.inputs.specs
        for relative in state.files.keys() - now.keys():
            self.deleted(state.files[relative])
        for relative, digest in now.items():
            old = state.files.get(relative)
            if old is not None and old.digest == digest:
                self.files[relative] = old
            else:
                self.changed(relative, digest, old)
        rebuilt: list[str] = []
        kept: dict[str, SpecRecord] = {}
        for relative, file in sorted(self.files.items()):
            if file.kind != MODEL:
                if file.kind and relative not in self.documents:
                    self.load(relative, file.display)  # the Project and FeatureSets
                continue
            record = state.models.get(relative)
            if record is not None and relative not in self.documents and file.ref not in self.refs:
                kept[relative] = record
                continue
            if relative not in self.documents:
                self.load(relative, file.display)
            rebuilt.append(relative)
        dropped = [r for relative, r in state.models.items() if relative not in kept]
        loaded = [self.documents[relative] for relative in sorted(self.documents)]
        return Update(self.files, loaded, rebuilt, kept, dropped)


def plan(specs: Path, inputs: Inputs, state: BuildState) -> Update | None:
    """What to build again to compile `specs` now; None for a full compile."""
    if (state.compiler, state.schemas) != (inputs.compiler, inputs.schemas):
        return None
    if state.specs_path != str(specs.resolve()):
        return None
    try:
        return _Planner(specs, inputs, state).plan()
    except _FullCompile:
        return None


@dataclass
class Merged:
    """Every Model spec's share of the compile, recorded or built again, in spec order."""

    files: dict[str, SpecFile]
    records: dict[str, SpecRecord]  # by relative path
    built: dict[str, SpecResult]  # those built again, with their files
    placements: list[ModelPlacement]  # sorted, as a full compile sorts them

    def kind_samples(self) -> list[Artifact]:
        """One empty file of each kind of object the models have: all `render_gitops`
        reads of the files (the kinds the AppProject lets Argo CD sync)."""
        kinds = set().union(*(r.kinds for r in self.records.values()))
        return [Artifact("", b"", (), kind=kind) for kind in sorted(kinds)]

    def diagnostics(self) -> list[Diagnostic]:
        """What the Model specs found, in the order a full compile reports it: the
        parsing problems of every spec, then resolving, then rendering."""
        results = [r.result for r in self.records.values()]
        return [
            *(d for r in results for d in r.problems),
            *(d for r in results for d in r.diagnostics),
            *(d for r in results for d in r.rendered),
        ]

    def unchecked(self, schemas: SchemaSet) -> set[str]:
        """The custom kinds no schema checked (all of them without a CRD folder)."""
        if schemas.crds is not None:
            return set(schemas.unchecked)
        kinds = set().union(*(r.kinds for r in self.records.values()))
        custom = {f"{api} {kind}" for api, kind in kinds if not schemas.is_core(api)}
        return custom | schemas.unchecked

    def manifest(self, last: bytes, gitops: list[Artifact]) -> bytes | None:
        """The manifest, from the chunks of `last` (the last manifest's text) and those of
        the files built again; each record learns where its chunks now sit. None when
        it cannot be assembled so."""
        parts = chunks.pieces(gitops, "")
        for relative, record in self.records.items():
            built = self.built.get(relative)
            if built is not None:
                parts.extend(chunks.pieces(built.artifacts, relative))
            else:
                parts.extend(chunks.cut(last, record.chunks, relative))
        sources = manifest_sources(gitops)
        for record in self.records.values():
            sources.update(record.sources)
        assembled = chunks.assemble(parts, sources)
        if assembled is None:
            return None
        text, placed = assembled
        if set(placed) - {""} != set(self.records):
            return None  # a spec with no files, or files outside its folders: not seen
        for relative, record in self.records.items():
            record.chunks = placed[relative]
        return text

    def state(self, inputs: Inputs, specs: Path, gitops: list[Artifact]) -> BuildState:
        return BuildState(
            inputs.fingerprint,
            inputs.compiler,
            inputs.schemas,
            str(specs.resolve()),
            self.files,
            self.records,
            {a.path: a.digest for a in gitops},
        )


def merge(update: Update, built: list[SpecResult]) -> Merged | None:
    """The recorded Model specs and those `built` again, in spec order; None when a
    spec was not built (it failed to parse) or two define one model (errors both)."""
    by_display = {result.path: result for result in built}
    results: dict[str, SpecResult] = {}
    for relative in update.rebuilt:
        result = by_display.get(update.files[relative].display)
        if result is None:
            return None
        results[relative] = result
    rebuilt = {relative: spec_record(result) for relative, result in results.items()}
    records = dict(sorted({**update.kept, **rebuilt}.items()))
    names = [r.result.name for r in records.values()]
    if len(set(names)) != len(names):
        return None
    placements = sorted(p for r in records.values() for p in r.result.placements)
    return Merged(update.files, records, results, placements)


@dataclass
class Changes:
    """What to do to the output folder."""

    write: list[Artifact]  # new or changed files
    stale: dict[str, str]  # files no longer produced, with the sha256 Kiln wrote
    manifest: bytes | None  # None when it is the same

    def files_after(
        self, before: Mapping[str, Stat], written: Mapping[str, Stat]
    ) -> dict[str, Stat]:
        """The stats of every file Kiln owns once the changes are made (the manifest
        included): those `written` now, the others as recorded `before`."""
        files = dict(before)
        for path in self.stale:
            files.pop(path, None)
        files.update(written)
        return files


def changes(
    out: Path, state: BuildState, update: Update, merged: Merged, gitops: list[Artifact]
) -> Changes | None:
    """The files that differ from what the last compile wrote, and the new manifest;
    None when the last manifest cannot be read or the new one assembled."""
    try:
        last = read(out / MANIFEST)
        if last is None:
            return None
        before = dict(state.gitops)
        for record in update.dropped:
            before.update(chunks.files_of(last, record.chunks))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    manifest = merged.manifest(last, gitops)
    if manifest is None:
        return None
    made = [a for result in merged.built.values() for a in result.artifacts] + gitops
    write = [a for a in made if before.get(a.path) != a.digest]
    paths = {a.path for a in made}
    stale = {p: digest for p, digest in sorted(before.items()) if p not in paths}
    return Changes(write, stale, manifest if manifest != last else None)


def state_of_full_compile(
    specs: Path,
    inputs: Inputs,
    documents: Mapping[str, Document],
    built: list[SpecResult],
    gitops: list[Artifact],
    manifest: bytes | None,
) -> BuildState | None:
    """What a full compile records for the next one, given the manifest it wrote; None
    when the manifest is not the one the chunks make (never seen)."""
    root = specs.resolve().parent
    files: dict[str, SpecFile] = {}
    for relative, digest in inputs.specs.items():
        document = documents.get(display_path(specs / relative, root))
        files[relative] = describe(document, digest) if document else SpecFile("", digest, "", "")
    by_display = {file.display: relative for relative, file in files.items() if file.display}
    if any(result.path not in by_display for result in built):
        return None  # a spec seen under another path (a link): record nothing, never guess
    results = {by_display[result.path]: result for result in built}
    records = {relative: spec_record(result) for relative, result in results.items()}
    placements = sorted(p for r in records.values() for p in r.result.placements)
    merged = Merged(files, dict(sorted(records.items())), results, placements)
    if manifest is None or merged.manifest(b"", gitops) != manifest:
        return None
    return merged.state(inputs, specs, gitops)
