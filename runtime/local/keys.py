"""This machine's signing key pair, made on first use, kept outside every repository.

`kiln run --local` signs what it publishes with it and `kiln serve` trusts its public
half, so the local loop is signed and verified end to end without any set-up. The pair
lives in `$KILN_KEY_DIR`, else `$XDG_CONFIG_HOME/kiln/keys`, else `~/.config/kiln/keys`:
a folder of mode 0700 holding `signing.pem` (the private key, 0600) and `signing.pub`
(its public half, to paste into a Project's `signing.public_keys`).
A key folder inside the project is refused, so the private key cannot be committed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_DIR_ENV = "KILN_KEY_DIR"
PRIVATE_FILE = "signing.pem"
PUBLIC_FILE = "signing.pub"


class LocalKeyError(Exception):
    """The local key pair cannot be made or read; the message says what to do."""


@dataclass(frozen=True)
class LocalKeyPair:
    private: Path
    public_pem: str


def key_dir(environ: Mapping[str, str] = os.environ) -> Path:
    if environ.get(KEY_DIR_ENV):
        return Path(environ[KEY_DIR_ENV])
    config = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "kiln" / "keys"


def _public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _create(folder: Path) -> None:
    """Write a new pair unless one is there; two processes racing keep one of theirs."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    staged = folder / f".{PRIVATE_FILE}.{os.getpid()}"
    descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(private)
    try:
        os.link(staged, folder / PRIVATE_FILE)  # fails if another process got there first
    except FileExistsError:
        return
    finally:
        staged.unlink()


def existing_public_pem(environ: Mapping[str, str] = os.environ) -> str | None:
    """The pair's public half if this machine has made one; never makes one."""
    private = key_dir(environ).expanduser() / PRIVATE_FILE
    try:
        key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return _public_pem(key).decode("ascii")


def local_key_pair(
    project: Path | None = None, environ: Mapping[str, str] = os.environ
) -> LocalKeyPair:
    """The pair, created on first use; refused inside `project` (the repository)."""
    folder = key_dir(environ).expanduser().resolve()
    if project is not None and folder.is_relative_to(project.resolve()):
        raise LocalKeyError(
            f"the signing key folder {folder} is inside the project {project}; set "
            f"${KEY_DIR_ENV} to a folder outside it so the private key is never committed"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        private = folder / PRIVATE_FILE
        if not private.exists():
            _create(folder)
        key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    except OSError as exc:
        raise LocalKeyError(
            f"cannot make or read the local signing key in {folder}: {exc}"
        ) from exc
    except (ValueError, TypeError) as exc:
        raise LocalKeyError(
            f"{private} is not a PEM private key: {exc}; delete it to make a new pair"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise LocalKeyError(f"{private} is not an elliptic-curve key; delete it to make a new pair")
    public = _public_pem(key)
    # A copy for people to hand to a Project's trust section; what is trusted is derived.
    if not (folder / PUBLIC_FILE).exists():
        (folder / PUBLIC_FILE).write_bytes(public)
    return LocalKeyPair(private, public.decode("ascii"))
