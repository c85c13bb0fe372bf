"""`kiln promote`: a published version from the local model store into the Model spec.

The store is the local environment's (`storage.models` of the Project's `kind: local`
environment, where `kiln run --local` publishes and `kiln serve` reads), unless the
caller names another folder. The version's record gives the entry (uri, sha256,
metrics); the edit itself is `runtime.contract.spec_edit.promote`, the one the publish
step's pull request makes. A refusal leaves the spec file as it was; so does a change
that does not build (the file is put back).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from compiler.api import CompileResult, build
from compiler.diagnostics import Diagnostic
from compiler.ir import ModelIR
from compiler.resolve import UnknownModel
from runtime.contract.model_store import StoredVersion, StoreError, read_versions
from runtime.contract.signing import signature_uri
from runtime.contract.spec_edit import (
    SpecEditError,
    VersionEntry,
    promote,
    serving_path,
)


class Refused(Exception):
    """Nothing was changed; the message says why and what to do."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []


@dataclass(frozen=True)
class Promotion:
    spec_file: Path
    version: StoredVersion
    served_at: str  # the spec path set, as dotted text
    changed: bool  # False: the spec already listed and served this version
    before: CompileResult
    after: CompileResult


def local_model(result: CompileResult, name: str) -> ModelIR:
    """The model in the Project's local environment: its store is the one promote reads."""
    models = result.resolution.models
    for model in models:
        if model.name == name and model.is_local:
            return model
    if all(model.name != name for model in models):
        known = ", ".join(sorted({model.name for model in models})) or "none"
        raise Refused(f"there is no Model named {name!r} in the specs (models: {known})")
    raise Refused("the Project has no `kind: local` environment, whose store promote reads")


def store_folder(root: Path, model: ModelIR, override: Path | None) -> Path:
    """The folder whose records promote reads: the local environment's model store, or
    the folder `--store` names (a folder copy of a remote store)."""
    uri = model.storage.models
    if override is not None and not override.is_dir():
        raise Refused(f"--store {override} is not a folder")
    if "://" in uri:
        if override is None:
            raise Refused(
                f"the local environment's model store is {uri}, not a folder: pass --store DIR"
            )
        return override
    local = root / uri
    # The entry's uri resolves against the local store: a version read from any other
    # folder would not be found there, and the promoted spec would not build.
    if override is not None and override.resolve() != local.resolve():
        raise Refused(
            f"--store {override} is not the local environment's model store ({uri}), "
            "where the promoted version's uri is looked up: copy the version's folder "
            f"({override / model.name}/VERSION) into {uri}/{model.name}/ and run "
            "promote without --store"
        )
    return local


def choose(stored: list[StoredVersion], wanted: int | None, store: Path) -> StoredVersion:
    """The version asked for, or the newest whose gates passed; refused unless it passed."""
    if wanted is None:
        passed = [v for v in stored if v.gates_passed]
        if not passed:
            listed = ", ".join(str(v.version) for v in stored) or "none"
            raise Refused(
                f"no version in {store} passed its gates (versions there: {listed}); "
                "`kiln run NAME --local` trains and publishes one"
            )
        return passed[-1]
    found = next((v for v in stored if v.version == wanted), None)
    if found is None:
        listed = ", ".join(str(v.version) for v in stored) or "none"
        raise Refused(f"version {wanted} is not in {store} (versions there: {listed})")
    if found.gates_passed is None:
        raise Refused(
            f"version {wanted}'s record in {store} does not say whether its gates passed: "
            "publish it again with `kiln run NAME --local`"
        )
    if not found.gates_passed:
        raise Refused(f"version {wanted} failed its gates; it cannot be served")
    return found


def entry_of(version: StoredVersion) -> VersionEntry:
    return VersionEntry(
        version=version.version,
        uri=version.uri,
        sha256=version.sha256,
        metrics=version.metrics,
        signature=signature_uri(version.uri) if version.signed else None,
        format=version.format,
        fil=version.fil,
    )


def write_atomic(path: Path, text: str) -> None:
    """Readers (an editor, `kiln compile` in another shell) see the old file or the new
    one, never half of it. The temporary name is hidden: the spec loader skips it."""
    temporary = path.with_name(f".{path.name}.kiln-promote")
    with temporary.open("w", encoding="utf-8", newline="") as stream:
        stream.write(text)
    os.replace(temporary, path)


def promote_version(
    specs: Path, name: str, wanted: int | None, environment: str | None, store: Path | None
) -> Promotion:
    """Edit the spec in place and build it; on a build error the old text is put back."""
    before = build(specs)
    if not before.ok:
        raise Refused(
            "the specs do not build as they are; fix them first (`kiln validate`)",
            [d for d in before.diagnostics if d.is_error],
        )
    model = local_model(before, name)
    if environment is not None:
        try:
            before.resolution.find(name, environment)
        except UnknownModel as exc:
            raise Refused(str(exc)) from exc
    root = specs.resolve().parent
    folder = store_folder(root, model, store)
    try:
        version = choose(read_versions(folder, name), wanted, folder)
    except StoreError as exc:
        raise Refused(str(exc)) from exc
    spec_file = root / model.source.file
    old = spec_file.read_bytes().decode("utf-8")  # as it is: CRLF kept
    try:
        new = promote(old, model.source.file, entry_of(version), serve_in=(environment,))
    except SpecEditError as exc:
        raise Refused(str(exc)) from exc
    served_at = ".".join(serving_path(environment))
    if new == old:
        return Promotion(spec_file, version, served_at, False, before, before)
    write_atomic(spec_file, new)
    after = build(specs)
    if not after.ok:
        write_atomic(spec_file, old)
        raise Refused(
            f"the promoted spec does not build, so {model.source.file} is left as it was",
            [d for d in after.diagnostics if d.is_error],
        )
    return Promotion(spec_file, version, served_at, True, before, after)
