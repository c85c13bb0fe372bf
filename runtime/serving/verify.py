"""Check a model file against its OpenSSF model-signing bundle and the environment's trust.

A bundle is accepted when one trusted signer verifies it: a public key (a bundle signed
with the key pair) or a Sigstore (identity, issuer) pair (a keyless bundle, checked
against Sigstore's public-good trust root and transparency log). Each is tried in turn;
every failure is kept, so the error says why each one refused. Anything the library
raises counts as a refusal: verification fails closed.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from runtime.contract.signing import Trust


class VerifyError(Exception):
    """The model file is not signed by anyone the environment trusts; says why."""


def key_id(pem: str) -> str:
    """The sha256 of a public key's PEM text, as publish records it (first 16 digits shown)."""
    return hashlib.sha256(pem.encode("utf-8")).hexdigest()


def _with_key(model: Path, bundle: Path, pem: str) -> None:
    from model_signing import verifying

    with tempfile.TemporaryDirectory(prefix="kiln-trust-") as folder:
        key = Path(folder) / "trusted.pub"
        key.write_text(pem, encoding="utf-8")
        verifying.Config().use_elliptic_key_verifier(public_key=key).verify(model, bundle)


def _with_identity(model: Path, bundle: Path, identity: str, issuer: str) -> None:
    from model_signing import verifying

    config = verifying.Config().use_sigstore_verifier(identity=identity, oidc_issuer=issuer)
    config.verify(model, bundle)


def verify(model: Path, bundle: Path, trust: Trust) -> str:
    """Who signed `model` (for the log), or VerifyError naming each refusal."""
    if not trust.declared:
        raise VerifyError("no trusted public key or identity is configured to verify it with")
    refusals: list[str] = []
    for pem in trust.public_keys:
        name = f"key {key_id(pem)[:16]}"
        try:
            _with_key(model, bundle, pem)
            return name
        except Exception as exc:  # the library raises ValueError, InvalidSignature, ...
            refusals.append(f"{name}: {type(exc).__name__}: {exc}".rstrip(": "))
    for trusted in trust.identities:
        name = f"identity {trusted.identity} ({trusted.issuer})"
        try:
            _with_identity(model, bundle, trusted.identity, trusted.issuer)
            return name
        except Exception as exc:  # as above: fail closed on anything
            refusals.append(f"{name}: {type(exc).__name__}: {exc}".rstrip(": "))
    raise VerifyError("no trusted signer verifies it: " + "; ".join(refusals))
