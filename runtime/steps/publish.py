"""The publish step: put a gated model version in the model store and propose it in the spec.

    python -m runtime.steps.publish --model FILE --store URI --name MODEL --version N
        --metrics FILE [--validation FILE] [--evaluation FILE] [--as-of TIME]
        --data-sha256 HEX --seed N [--image IMG]
        [--git-revision REV] [--spec-digest HEX] [--trainer JSON] [--signing-key PEM]
        [--spec FILE [--spec-path-in-repo PATH]]
        [--open-pr --github-repo OWNER/NAME [--token-env GITHUB_TOKEN] [--base BRANCH]
         [--github-api URL]] --out DIR

The store is a local folder or any fsspec URL (s3://bucket/prefix, gs://...). Written there:

* <store>/<name>/<version>/model.onnx, the artifact;
* <store>/<name>/<version>/metadata.json (its layout and reader: runtime/contract/
  model_store.py): the artifact's uri (relative to the store), sha256 and size, the
  metrics, the gates' outcome (from evaluate's evaluation.json; null without it), the
  validation summary, data digest and the snapshot's as-of time, seed, image (and its
  digest), git revision and spec digest, and (when signed) the signature and provenance
  it names. Sorted keys and no clock of its own: a rerun of the same snapshot writes the
  same bytes. `kiln promote` reads it to add the version to the spec.
* when a signer is chosen (runtime/steps/signing.py: a key pair, or Sigstore keyless with
  an OIDC token): <store>/<name>/<version>/model.onnx.sig, the OpenSSF model-signing
  bundle, and model.onnx.provenance.json, the signed in-toto statement of its SLSA
  provenance (runtime/steps/provenance.py). Both are written before the record.

A version is immutable. If the store already holds a different artifact at that version the
step refuses; if it holds the same bytes the step succeeds without writing (a retried run),
and an existing metadata record is kept as it is (its differing keys are named).

Written to DIR:

* sha256: the artifact digest and a newline;
* metadata.json: the record as uploaded;
* version.yaml: the entry to add to the model's `spec.versions` (version, artifact {uri,
  sha256, signature when signed}, metrics), as a YAML mapping;
* model.onnx.sig and model.onnx.provenance.json, when signed: as uploaded;
* spec.patch (with --spec): a unified diff, paths a/<path in repo> b/<path in repo>, that
  appends the entry to `spec.versions` and changes nothing else: the file's text is edited
  by runtime/contract/spec_edit.py (the edit `kiln promote` makes), so its comments and
  formatting stay. `git apply spec.patch` in the repository applies it.
  The path in the repository is --spec-path-in-repo, or --spec relative to the enclosing
  git checkout.
* pull_request.json (with --open-pr): the pull request opened with GitHub's REST API: a
  branch kiln/<name>-v<version> from the base branch (default: the repository's default
  branch), the spec file changed on it, and a pull request to the base. The token is read
  from the environment variable named by --token-env and never printed.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import json
import os
import posixpath
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from runtime.contract.model_store import (
    ARTIFACT_FILE,
    artifact_uri,
    gates_outcome,
    record_uri,
)
from runtime.contract.secret_http import no_redirects, secret_safe
from runtime.contract.signing import provenance_uri, signature_uri
from runtime.contract.spec_edit import SpecEditError, VersionEntry, promote
from runtime.contract.steps import PUBLISH
from runtime.steps import provenance
from runtime.steps.pipeline_io import (
    StepError,
    json_argument,
    json_text,
    progress,
    run_main,
    sha256_bytes,
    write_atomic,
    write_text,
)
from runtime.steps.signing import Signer, choose_signer

STEP = "publish"
IMAGE_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")


# ------------------------------------------------------------------------- inputs


def read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise StepError(f"cannot read {what} {path}: {error.strerror}") from error
    except json.JSONDecodeError as error:
        raise StepError(f"{what} {path} is not valid JSON: {error}") from error


def read_metrics(path: Path) -> dict[str, float]:
    document = read_json_file(path, "metrics file")
    if not isinstance(document, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in document.values()
    ):
        raise StepError(f"metrics file {path} must be a JSON object of numbers")
    return {str(k): float(v) for k, v in sorted(document.items())}


def validation_summary(path: Path | None) -> dict[str, Any] | None:
    """What the record keeps of validation.json: the verdict and p99 per batch size."""
    if path is None:
        return None
    document = read_json_file(path, "validation file")
    if not isinstance(document, dict):
        raise StepError(f"validation file {path} must be a JSON object")
    latency = document.get("latency") or {}
    return {
        "passed": bool(document.get("passed")),
        "signature_matches": bool((document.get("signature") or {}).get("matches")),
        "latency_p99_ms": {size: entry.get("p99_ms") for size, entry in latency.items()},
        "slo_p99_ms": document.get("slo_p99_ms"),
    }


def gates_record(path: Path | None) -> dict[str, Any] | None:
    """The gates' verdict from evaluate's evaluation.json; `kiln promote` refuses a version
    whose record says they failed, or does not say."""
    if path is None:
        return None
    document = read_json_file(path, "evaluation file")
    if not isinstance(document, dict) or not isinstance(document.get("gates", []), list):
        raise StepError(f"evaluation file {path} must be a JSON object with a gates list")
    return gates_outcome(document)


def metadata_record(
    args: argparse.Namespace, payload: bytes, signer: Signer | None = None
) -> dict[str, Any]:
    digest = IMAGE_DIGEST.search(args.image or "")
    uri = artifact_uri(args.name, args.version, args.model_file)
    signed = signer is not None
    return {
        **format_record(args),
        "artifact": {
            "sha256": sha256_bytes(payload),
            "size": len(payload),
            "uri": uri,
        },
        # The snapshot's time (the features step's as_of), so a promoted version says
        # which data it saw; None when the run read its source without a cut-off.
        "as_of": args.as_of or None,
        "data_sha256": args.data_sha256,
        "gates": gates_record(args.evaluation),
        "git_revision": args.git_revision,
        "image": args.image,
        "image_digest": digest.group(1) if digest else None,
        "metrics": read_metrics(args.metrics),
        "model": args.name,
        "provenance": provenance_uri(uri) if signed else None,
        "seed": args.seed,
        "signature": {"bundle": signature_uri(uri), **signer.describe()} if signer else None,
        "spec_digest": args.spec_digest,
        "validation": validation_summary(args.validation),
        "version": args.version,
    }


def format_record(args: argparse.Namespace) -> dict[str, Any]:
    """A model that is not ONNX records its format and FIL settings, which `kiln promote`
    copies into the spec; an ONNX record stays as it always was."""
    if args.format in (None, "onnx"):
        return {}
    fil = None if args.fil is None else json_argument(args.fil, "--fil")
    if fil is not None and not isinstance(fil, dict):
        raise StepError("--fil must be a JSON object")
    return {"fil": fil, "format": args.format}


# -------------------------------------------------------------------------- store


@dataclass(frozen=True)
class Store:
    fs: fsspec.AbstractFileSystem
    root: str
    uri: str

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative)

    def url(self, relative: str) -> str:
        return self.uri.rstrip("/") + "/" + relative

    def read(self, relative: str) -> bytes | None:
        try:
            if not self.fs.exists(self.path(relative)):
                return None
            data: bytes = self.fs.cat_file(self.path(relative))
            return data
        except OSError as error:
            raise StepError(f"cannot read {self.url(relative)}: {error}") from error

    def write(self, relative: str, payload: bytes) -> None:
        path = self.path(relative)
        try:
            if isinstance(self.fs, LocalFileSystem):
                # A model server may poll this folder: never let it see a partial file.
                write_atomic(Path(path), payload)
            else:
                self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
                self.fs.pipe_file(path, payload)  # object stores: one atomic PUT
        except OSError as error:
            raise StepError(f"cannot write {self.url(relative)}: {error}") from error


def open_store(uri: str) -> Store:
    try:
        fs, root = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as error:
        raise StepError(f"cannot open model store {uri}: {error}") from error
    return Store(fs=fs, root=root.rstrip("/"), uri=uri)


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def upload_artifact(
    store: Store, name: str, version: int, payload: bytes, file: str = ARTIFACT_FILE
) -> None:
    """The artifact, unless the store holds these bytes already (refused if others)."""
    model_rel = artifact_uri(name, version, file)
    existing = store.read(model_rel)
    new_sha = sha256_bytes(payload)
    if existing is not None and existing != payload:
        raise StepError(
            f"refusing to overwrite {store.url(model_rel)}: it holds sha256 "
            f"{sha256_bytes(existing)}, this artifact is {new_sha}; versions are immutable, "
            "publish a new version number"
        )
    if existing is None:
        store.write(model_rel, payload)
        progress(STEP, f"uploaded {store.url(model_rel)} sha256={new_sha}")
    else:
        progress(STEP, f"{store.url(model_rel)} already holds this artifact; not rewritten")


def upload_record(store: Store, name: str, version: int, metadata: str) -> str:
    """The metadata record, unless one is there (kept as it is); the record the store holds."""
    meta_rel = record_uri(name, version)
    old_meta = store.read(meta_rel)
    if old_meta is None:
        store.write(meta_rel, metadata.encode("utf-8"))
        progress(STEP, f"uploaded {store.url(meta_rel)}")
        return metadata
    if old_meta != metadata.encode("utf-8"):
        try:
            keys = changed_keys(json.loads(old_meta), json.loads(metadata))
        except (json.JSONDecodeError, AttributeError):
            keys = ["(unreadable record)"]
        progress(STEP, f"kept the existing {store.url(meta_rel)}; it differs in: {', '.join(keys)}")
    return old_meta.decode("utf-8", "replace")


# ------------------------------------------------------------------ spec editing


def version_entry(record: Mapping[str, Any]) -> VersionEntry:
    """The spec's entry for a record: uri, digest, signature bundle and metrics."""
    signature = record.get("signature")
    return VersionEntry(
        version=record["version"],
        uri=record["artifact"]["uri"],
        sha256=record["artifact"]["sha256"],
        metrics=record["metrics"],
        signature=signature["bundle"] if signature else None,
        format=record.get("format", "onnx"),
        fil=record.get("fil"),
    )


def edited_spec(text: str, where: str, entry: VersionEntry) -> str:
    """The spec with the version added (not served: merging the proposal records it, and
    `kiln promote` or a change of serving.version serves it)."""
    try:
        return promote(text, where, entry, serve_in=())
    except SpecEditError as error:
        raise StepError(str(error)) from error


def unified_diff(old: str, new: str, path: str) -> str:
    """A git-apply-able diff, including git's marker for a last line without a newline."""
    diff = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff
    )


def repo_relative(spec: Path, override: str | None) -> str:
    if override:
        return posixpath.normpath(override.replace("\\", "/")).lstrip("/")
    if not spec.is_absolute():
        return posixpath.normpath(spec.as_posix())
    for parent in spec.parents:
        if (parent / ".git").exists():
            return spec.relative_to(parent).as_posix()
    raise StepError(f"{spec} is not inside a git checkout; pass --spec-path-in-repo")


# ------------------------------------------------------------------------ GitHub


class GitHub:
    """The four REST calls a pull request takes, with urllib (no client library)."""

    def __init__(self, api: str, repo: str, token: str) -> None:
        if not secret_safe(api):
            raise StepError(f"--github-api {api} is not https: the token goes over https only")
        self.api = api.rstrip("/")
        self.repo = repo
        self.token = token

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        url = f"{self.api}/repos/{self.repo}{path}"
        request = urllib.request.Request(  # noqa: S310 https (checked in __init__)
            url,
            data=None if body is None else json.dumps(body).encode("utf-8"),
            method=method,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "User-Agent": "kiln-publish",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )
        try:
            # No redirect is followed: it would carry the token to another host.
            with no_redirects.open(request, timeout=30) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:300]
            raise StepError(f"GitHub {method} {url} failed: {error.code} {detail}") from error
        except (urllib.error.URLError, TimeoutError) as error:
            raise StepError(f"GitHub {method} {url} failed: {error}") from error
        return json.loads(payload) if payload else None


@dataclass(frozen=True)
class Proposal:
    path: str  # spec file, relative to the repository root
    name: str
    version: int
    entry: VersionEntry
    base: str | None


def open_pull_request(github: GitHub, proposal: Proposal) -> dict[str, Any]:
    """Branch from base, commit the changed spec on it, open the pull request."""
    base = proposal.base or github.call("GET", "")["default_branch"]
    quoted_base = urllib.parse.quote(base, safe="/")
    base_sha = github.call("GET", f"/git/ref/heads/{quoted_base}")["object"]["sha"]
    branch = f"kiln/{proposal.name}-v{proposal.version}"
    github.call("POST", "/git/refs", {"ref": f"refs/heads/{branch}", "sha": base_sha})
    contents = f"/contents/{urllib.parse.quote(proposal.path, safe='/')}"
    query = f"?ref={urllib.parse.quote(branch, safe='')}"
    current = github.call("GET", contents + query)
    # Edit the file as it is on the branch, which may be ahead of the local copy.
    old = base64.b64decode(current["content"]).decode("utf-8")
    new = edited_spec(old, proposal.path, proposal.entry)
    title = f"{proposal.name}: add version {proposal.version}"
    github.call(
        "PUT",
        contents,
        {
            "message": title,
            "content": base64.b64encode(new.encode("utf-8")).decode("ascii"),
            "sha": current["sha"],
            "branch": branch,
        },
    )
    body = (
        f"Adds version {proposal.version} of `{proposal.name}` to `{proposal.path}`, "
        "published by the Kiln training pipeline after its gates passed. Merging records the "
        "version; serving moves when `serving.version` changes."
    )
    pull = github.call(
        "POST", "/pulls", {"title": title, "head": branch, "base": base, "body": body}
    )
    return {"branch": branch, "number": pull.get("number"), "url": pull.get("html_url")}


# -------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = PUBLISH.parser()
    args = parser.parse_args(argv)
    text = args.version.removeprefix("from:")
    if not text.isdigit() or int(text) < 1:
        parser.error("--version must be a number >= 1, or from:N")
    args.version_from = args.version.startswith("from:")
    # The stored file keeps the name Triton's backend looks for: model.onnx, or the native
    # file's own (xgboost.json), whose suffix also tells FIL its serialisation.
    args.model_file = ARTIFACT_FILE if args.format in (None, "onnx") else args.model.name
    args.version = int(text)
    if args.open_pr and not (args.github_repo and args.spec):
        parser.error("--open-pr needs --github-repo and --spec")
    return args


def read_model(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise StepError(f"cannot read the model {path}: {error.strerror}") from error


def write_spec_patch(args: argparse.Namespace, entry: VersionEntry) -> str:
    relative = repo_relative(args.spec, args.spec_path_in_repo)
    try:
        old = args.spec.read_text(encoding="utf-8")
    except OSError as error:
        raise StepError(f"cannot read the spec {args.spec}: {error.strerror}") from error
    new = edited_spec(old, str(args.spec), entry)
    write_text(args.out / "spec.patch", unified_diff(old, new, relative))
    progress(STEP, f"wrote {args.out / 'spec.patch'} for {relative}")
    return relative


def propose(args: argparse.Namespace, relative: str, entry: VersionEntry) -> None:
    token = os.environ.get(args.token_env, "").strip()
    if not token:
        raise StepError(f"--open-pr needs a GitHub token in ${args.token_env}; it is not set")
    github = GitHub(args.github_api, args.github_repo, token)
    proposal = Proposal(relative, args.name, args.version, entry, args.base)
    pull = open_pull_request(github, proposal)
    write_text(args.out / "pull_request.json", json_text(pull))
    progress(STEP, f"opened pull request {pull['url']}")


def first_free_version(
    store: Store, name: str, start: int, payload: bytes, file: str = ARTIFACT_FILE
) -> int:
    """The first version from `start` whose slot is empty or holds these very bytes."""
    digest = sha256_bytes(payload)
    version = start
    while True:
        existing = store.read(artifact_uri(name, version, file))
        if existing is None or sha256_bytes(existing) == digest:
            return version
        version += 1


def trainer_parameters(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    document = json_argument(value, "--trainer")
    if not isinstance(document, dict):
        raise StepError("--trainer must be a JSON object")
    return document


def sign_version(
    args: argparse.Namespace, store: Store, signer: Signer, record: dict[str, Any]
) -> None:
    """Bundle and provenance beside the artifact; ones already there are kept (a retried
    run: an ECDSA signature differs each time, the facts it signs do not)."""
    uri = record["artifact"]["uri"]
    written = {
        signature_uri(uri): args.out / posixpath.basename(signature_uri(uri)),
        provenance_uri(uri): args.out / posixpath.basename(provenance_uri(uri)),
    }
    existing = {relative: store.read(relative) for relative in written}
    if all(payload is not None for payload in existing.values()):
        for relative, local in written.items():
            write_atomic(local, existing[relative] or b"")
        progress(STEP, f"{store.url(signature_uri(uri))} already signs this version; kept")
        return
    bundle, statement = written.values()
    signer.sign_model(args.model, bundle)
    stated = provenance.statement(record, trainer_parameters(args.trainer))
    write_atomic(statement, signer.sign_statement(stated))
    for relative, local in written.items():
        store.write(relative, local.read_bytes())
    progress(
        STEP, f"signed ({signer.method}): {store.url(signature_uri(uri))}, provenance beside it"
    )


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    payload = read_model(args.model)
    trainer_parameters(args.trainer)  # a bad --trainer fails before anything is written
    signer = choose_signer(args.signing_key, os.environ)
    store = open_store(args.store)
    if args.version_from:
        args.version = first_free_version(store, args.name, args.version, payload, args.model_file)
        progress(STEP, f"publishing as version {args.version}")
    record = metadata_record(args, payload, signer)
    args.out.mkdir(parents=True, exist_ok=True)
    upload_artifact(store, args.name, args.version, payload, args.model_file)
    if signer is None:
        progress(
            STEP,
            "NOT signed: no --signing-key, $KILN_SIGNING_KEY or OIDC token; an environment "
            "with policy.require_signatures will refuse this version",
        )
    else:
        sign_version(args, store, signer, record)
    stored = upload_record(store, args.name, args.version, json_text(record))
    sha256 = record["artifact"]["sha256"]
    entry = version_entry(record)
    write_text(args.out / "sha256", sha256 + "\n")
    write_text(args.out / "metadata.json", stored)
    write_text(args.out / "version.yaml", "\n".join(entry.lines()) + "\n")
    if args.spec is not None:
        relative = write_spec_patch(args, entry)
        if args.open_pr:
            propose(args, relative, entry)
    progress(
        STEP, f"published {args.name} version {args.version} in {time.perf_counter() - start:.2f}s"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
