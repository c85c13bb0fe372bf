"""Assemble a Triton model repository: artifacts fetched and verified, config beside them.

Layout written for one model::

    <repository>/<model>/config.pbtxt
    <repository>/<model>/<version>/model.onnx      (one folder per served version; the
                                                    config's default_model_filename if set)
    <repository>/<model>/<version>/<extra files>   (e.g. the python-backend adapter)
    <repository>/<model>/<version>/model.savedmodel/...   (a folder artifact, fetched whole)
    <repository>/<model>/<version>/python-env.tar.gz      (a python version's conda-pack
                                                    archive, where EXECUTION_ENV_PATH points)

Artifacts are read through fsspec, so a local path, `file://`, `s3://`, `gs://`
(with the matching fsspec filesystem installed) or `memory://` all work. Every
artifact with a declared sha256 is hashed while it is copied (a folder's digest is
the one of runtime/contract/artifact_digest.py; its names and links are checked
before anything is copied: runtime/serving/folders.py); one mismatch and
nothing is changed: the model folder is built in a temporary folder beside it
and renamed into place only when complete.

A version given a signature (`--signature VERSION=URI`, an OpenSSF model-signing
bundle) is verified against the trusted keys and identities of `--trust FILE`
(runtime/contract/signing.py's JSON) before it is placed, in the same all-or-nothing
way. When the trust file says `require_signatures`, a version without a signature
is refused. Any failure exits non-zero, so the init container fails and Triton,
the pod's main container, never starts.

In the cluster this runs as an init container (the config comes from a
ConfigMap mount)::

    python -m runtime.serving.assemble --model car-loan-default --config /config/config.pbtxt \\
        --repository /models --artifact 1=s3://acme-models/car-loan-default/1/model.onnx \\
        --sha256 1=905bf2965a39c334beb2be804dd0a7dd58c6accbf6f1086e8ac7dffa43d450ca \\
        --signature 1=s3://acme-models/car-loan-default/1/model.onnx.sig --trust /config/trust.json
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import fsspec  # type: ignore[import-untyped, unused-ignore]
from tritonclient.grpc import model_config_pb2

from runtime.contract.formats import (
    EXECUTION_ENV_PARAMETER,
    execution_env_place,
    is_folder,
    local_run,
)
from runtime.contract.secrets import redact
from runtime.contract.secrets import redact_uri as shown_uri
from runtime.contract.served import ArtifactSource
from runtime.contract.signing import Trust, TrustError
from runtime.contract.triton_config import ConfigError, read_config
from runtime.serving.flags import FlagError, versioned
from runtime.serving.folders import FolderError, fetch_folder
from runtime.serving.verify import VerifyError, verify

CONFIG_FILE = "config.pbtxt"
CHUNK = 1 << 20
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class AssembleError(Exception):
    """Why a repository could not be assembled; the message is meant for people."""


def fetch(uri: str, destination: Path, expected_sha256: str | None = None) -> str:
    """Copy `uri` to `destination`, hashing on the way; return the sha256 hex digest.

    Raises AssembleError when the file cannot be read or its digest is not the
    expected one (the partial copy is removed in both cases).
    """
    digest = hashlib.sha256()
    try:
        with fsspec.open(uri, "rb") as source, destination.open("wb") as target:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                target.write(chunk)
    except FileNotFoundError as exc:
        destination.unlink(missing_ok=True)
        raise AssembleError(f"artifact not found: {shown_uri(uri)}") from exc
    except (OSError, ValueError, ImportError) as exc:
        # fsspec raises ValueError/ImportError for unknown protocols or missing drivers.
        destination.unlink(missing_ok=True)
        reason = redact(str(exc).replace(uri, shown_uri(uri)))
        raise AssembleError(f"cannot read artifact {shown_uri(uri)}: {reason}") from exc
    actual = digest.hexdigest()
    if expected_sha256 is not None and actual != expected_sha256.lower():
        destination.unlink(missing_ok=True)
        raise AssembleError(
            f"sha256 mismatch for {shown_uri(uri)}: "
            f"expected {expected_sha256.lower()}, got {actual}"
        )
    return actual


def fetch_artifact(uri: str, destination: Path, expected_sha256: str | None, folder: bool) -> str:
    """A version's artifact: one file, or every file below a folder URI (a SavedModel),
    whose digest is the folder digest of runtime/contract/artifact_digest.py."""
    if not folder:
        return fetch(uri, destination, expected_sha256)
    try:
        return fetch_folder(uri, destination, expected_sha256)
    except FolderError as exc:
        raise AssembleError(str(exc)) from exc


def execution_env_file(config: model_config_pb2.ModelConfig, artifact: ArtifactSource) -> str:
    """The name the version's conda-pack archive takes beside model.py: where the config's
    EXECUTION_ENV_PATH points. Empty when the version has none and the config expects
    none in its folder; AssembleError when only one of the two names an archive."""
    path = ""
    if EXECUTION_ENV_PARAMETER in config.parameters:
        path = config.parameters[EXECUTION_ENV_PARAMETER].string_value
    place = execution_env_place(path)
    ours = place is not None and place[0] == artifact.version
    if artifact.execution_env is None:
        if ours:
            raise AssembleError(
                f"{CONFIG_FILE} sets {EXECUTION_ENV_PARAMETER} to {path!r} but version "
                f"{artifact.version} has no --execution-env archive to put there"
            )
        return ""
    if place is None or not ours:
        raise AssembleError(
            f"version {artifact.version} has an --execution-env archive but {CONFIG_FILE}'s "
            f"{EXECUTION_ENV_PARAMETER} ({path!r}) does not point into its version folder"
        )
    return place[1]


def _place_execution_env(
    config: model_config_pb2.ModelConfig, artifact: ArtifactSource, version_dir: Path
) -> None:
    name = execution_env_file(config, artifact)
    if name and artifact.execution_env is not None:
        try:
            fetch(artifact.execution_env, version_dir / name, artifact.execution_env_sha256)
        except AssembleError as exc:
            raise AssembleError(f"execution env: {exc}") from exc


def parse_config(text: str, model: str, versions: Sequence[int]) -> model_config_pb2.ModelConfig:
    """Parse config.pbtxt as Triton would and check it fits the files being assembled."""
    try:
        config = read_config(text)
    except ConfigError as exc:
        raise AssembleError(
            f"{CONFIG_FILE} is not a valid Triton model configuration: {exc}"
        ) from exc
    if config.name and config.name != model:
        raise AssembleError(
            f"{CONFIG_FILE} names model {config.name!r} but the repository folder is {model!r}; "
            "Triton refuses to load a model whose name differs from its folder"
        )
    if config.version_policy.HasField("specific"):
        missing = sorted(set(config.version_policy.specific.versions) - set(versions))
        if missing:
            raise AssembleError(
                f"{CONFIG_FILE} serves version(s) {missing} but no artifact was given for them"
            )
    return config


def _check_signed(artifacts: Sequence[ArtifactSource], trust: Trust) -> None:
    """Fail before fetching anything when the signatures cannot satisfy the trust."""
    for artifact in artifacts:
        if artifact.signature is None and trust.require_signatures:
            raise AssembleError(
                f"version {artifact.version} ({artifact.uri}) has no signature and this "
                "environment requires signatures; publish it with a signing key and add "
                "artifact.signature to the version"
            )
        if artifact.signature is not None and not trust.declared:
            raise AssembleError(
                f"version {artifact.version} has a signature but no trusted public key or "
                "identity was given to check it with (--trust)"
            )


def verify_signature(artifact: ArtifactSource, model_file: Path, trust: Trust) -> str | None:
    """Who signed the fetched file (None when it carries no signature); AssembleError else."""
    if artifact.signature is None:
        return None
    with tempfile.TemporaryDirectory(prefix="kiln-signature-") as folder:
        bundle = Path(folder) / "model.sig"
        try:
            fetch(artifact.signature, bundle)
            return verify(model_file, bundle, trust)
        except (AssembleError, VerifyError) as exc:
            raise AssembleError(f"signature {artifact.signature}: {exc}") from exc


def _check_sources(artifacts: Sequence[ArtifactSource], require_sha256: bool) -> None:
    if not artifacts:
        raise AssembleError("no artifacts given: a model needs at least one version")
    seen: set[int] = set()
    for artifact in artifacts:
        if artifact.version < 1:
            raise AssembleError(f"version {artifact.version} is not a positive integer")
        if artifact.version in seen:
            raise AssembleError(f"version {artifact.version} is given twice")
        seen.add(artifact.version)
        if artifact.sha256 is None:
            if require_sha256:
                raise AssembleError(
                    f"version {artifact.version} ({shown_uri(artifact.uri)}) has no sha256 and "
                    "--require-sha256 is set"
                )
        elif not SHA256.match(artifact.sha256.lower()):
            raise AssembleError(
                f"version {artifact.version}: {artifact.sha256!r} is not a sha256 hex digest"
            )
        _check_execution_env(artifact, require_sha256)


def _check_execution_env(artifact: ArtifactSource, require_sha256: bool) -> None:
    digest = artifact.execution_env_sha256
    if artifact.execution_env is None:
        if digest is not None:
            raise AssembleError(f"version {artifact.version}: a sha256 for no execution env")
        return
    if digest is None and require_sha256:
        raise AssembleError(
            f"version {artifact.version}'s execution env has no sha256 and --require-sha256 is set"
        )
    if digest is not None and not SHA256.match(digest.lower()):
        raise AssembleError(f"version {artifact.version}: {digest!r} is not a sha256 hex digest")


def _replace(folder: Path, staged: Path) -> None:
    """Swap `staged` in as `folder`; a crash leaves either the old or the new one."""
    if not folder.exists():
        staged.rename(folder)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
    old.rmdir()
    folder.rename(old)
    try:
        staged.rename(folder)
    except OSError:
        old.rename(folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def assemble(
    model: str,
    artifacts: Sequence[ArtifactSource],
    config_text: str,
    repository: Path,
    *,
    extra_files: Sequence[Path] = (),
    require_sha256: bool = False,
    trust: Trust | None = None,
    signers: dict[int, str] | None = None,
) -> Path:
    """Write `<repository>/<model>` completely, or change nothing; return the model folder.

    `extra_files` are copied into every version folder (the local python
    backend's adapter). Signed versions are verified against `trust`; who signed
    each is recorded in `signers` when given. Raises AssembleError with a message
    naming the fault.
    """
    trust = trust or Trust()
    if not model or "/" in model or model.startswith("."):
        raise AssembleError(f"{model!r} is not a usable model folder name")
    _check_sources(artifacts, require_sha256)
    _check_signed(artifacts, trust)
    config = parse_config(config_text, model, [a.version for a in artifacts])
    # The compiler names the file of formats other than ONNX in the config.
    parameters = {k: v.string_value for k, v in config.parameters.items()}
    _, model_file = local_run(parameters, config.default_model_filename)
    folder = is_folder(model_file)
    for extra in extra_files:
        if not extra.is_file():
            raise AssembleError(f"extra file {extra} does not exist")
    repository.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{model}.assemble-", dir=repository))
    try:
        for artifact in sorted(artifacts, key=lambda a: a.version):
            version_dir = staged / str(artifact.version)
            version_dir.mkdir()
            try:
                fetch_artifact(artifact.uri, version_dir / model_file, artifact.sha256, folder)
                signer = verify_signature(artifact, version_dir / model_file, trust)
                _place_execution_env(config, artifact, version_dir)
            except AssembleError as exc:
                raise AssembleError(
                    f"version {artifact.version}: {exc}; {repository / model} was not changed"
                ) from exc
            if signer is not None and signers is not None:
                signers[artifact.version] = signer
            for extra in extra_files:
                shutil.copyfile(extra, version_dir / extra.name)
        (staged / CONFIG_FILE).write_text(config_text, encoding="utf-8")
        # mkdtemp makes it 0700; Triton may run as another user. Readable, not writable.
        os.chmod(staged, 0o755)  # noqa: S103
        _replace(repository / model, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return repository / model


def _pairs(values: Sequence[str], flag: str) -> dict[int, str]:
    try:
        return versioned(values, flag)
    except FlagError as exc:
        raise AssembleError(str(exc)) from exc


def sources_from_flags(
    artifacts: Sequence[str],
    digests: Sequence[str],
    signatures: Sequence[str] = (),
    envs: Sequence[str] = (),
    env_digests: Sequence[str] = (),
) -> list[ArtifactSource]:
    uris = _pairs(artifacts, "--artifact")
    sha256 = _pairs(digests, "--sha256")
    bundles = _pairs(signatures, "--signature")
    archives = _pairs(envs, "--execution-env")
    archive_sha256 = _pairs(env_digests, "--execution-env-sha256")
    for flag, given in (
        ("--sha256", sha256),
        ("--signature", bundles),
        ("--execution-env", archives),
        ("--execution-env-sha256", archive_sha256),
    ):
        stray = sorted(set(given) - set(uris))
        if stray:
            raise AssembleError(f"{flag} given for version(s) {stray} without an --artifact")
    return [
        ArtifactSource(
            v, uri, sha256.get(v), bundles.get(v), archives.get(v), archive_sha256.get(v)
        )
        for v, uri in sorted(uris.items())
    ]


def read_trust(path: Path | None) -> Trust:
    if path is None:
        return Trust()
    try:
        return Trust.from_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AssembleError(f"cannot read {path}: {exc.strerror}") from exc
    except TrustError as exc:
        raise AssembleError(f"{path} is not a trust document: {exc}") from exc


def checked(source: ArtifactSource, signers: dict[int, str]) -> str:
    """What was verified of an assembled version, for the log."""
    digest = "sha256 verified" if source.sha256 else "sha256 NOT verified (none given)"
    signer = signers.get(source.version)
    signature = f"signed by {signer}" if signer else "NOT signed"
    return f"{digest}, {signature}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.serving.assemble",
        description="Assemble a Triton model repository from verified model artifacts.",
    )
    parser.add_argument("--model", required=True, help="Model name (its folder in the repository).")
    parser.add_argument("--config", required=True, type=Path, help="config.pbtxt to install.")
    parser.add_argument("--repository", required=True, type=Path, help="Model repository root.")
    parser.add_argument(
        "--artifact",
        action="append",
        default=[],
        metavar="VERSION=URI",
        help="A served version's model file, or folder (a SavedModel): a path or fsspec URI "
        "(repeat per version).",
    )
    parser.add_argument(
        "--sha256",
        action="append",
        default=[],
        metavar="VERSION=HEX",
        help="Expected sha256 of a version's file, or folder digest (repeat per version).",
    )
    parser.add_argument(
        "--signature",
        action="append",
        default=[],
        metavar="VERSION=URI",
        help="A version's OpenSSF model-signing bundle, verified against --trust.",
    )
    parser.add_argument(
        "--execution-env",
        action="append",
        default=[],
        metavar="VERSION=URI",
        help="A python version's conda-pack archive, put where the config's "
        "EXECUTION_ENV_PATH points (beside model.py).",
    )
    parser.add_argument(
        "--execution-env-sha256",
        action="append",
        default=[],
        metavar="VERSION=HEX",
        help="Expected sha256 of a version's --execution-env archive.",
    )
    parser.add_argument(
        "--trust",
        type=Path,
        help="JSON of the trusted public keys and identities, and require_signatures.",
    )
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        type=Path,
        help="An extra file to copy into every version folder.",
    )
    parser.add_argument(
        "--require-sha256",
        action="store_true",
        help="Refuse any artifact without an expected digest.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sources = sources_from_flags(
            args.artifact,
            args.sha256,
            args.signature,
            args.execution_env,
            args.execution_env_sha256,
        )
        trust = read_trust(args.trust)
        signers: dict[int, str] = {}
        try:
            config_text = args.config.read_text(encoding="utf-8")
        except OSError as exc:
            raise AssembleError(f"cannot read {args.config}: {exc}") from exc
        folder = assemble(
            args.model,
            sources,
            config_text,
            args.repository,
            extra_files=args.file,
            require_sha256=args.require_sha256,
            trust=trust,
            signers=signers,
        )
    except AssembleError as exc:
        print(f"assemble: error: {exc}", file=sys.stderr)
        return 1
    for source in sources:
        state = checked(source, signers)
        where = shown_uri(source.uri)
        print(f"assemble: {args.model} version {source.version} from {where}: {state}")
    print(f"assemble: wrote {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
