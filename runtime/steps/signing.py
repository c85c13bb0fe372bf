"""Sign a published model version: the artifact with OpenSSF model-signing, its provenance
statement as a DSSE envelope.

Which signer is used is decided by `choose_signer`, from the publish step's flag and
environment, in this order:

1. `--signing-key PATH`, else `$KILN_SIGNING_KEY`: an elliptic-curve private key (PEM,
   P-256/384/521). Works offline; the verifier trusts its public half.
2. `$SIGSTORE_ID_TOKEN`, else GitHub Actions' OIDC variables: Sigstore keyless signing.
   Fulcio certifies the token's identity, Rekor logs the signature; the verifier trusts
   the (identity, issuer) pair. Needs the network.
3. Neither: the version is published unsigned and the step says so. An environment with
   `policy.require_signatures` then refuses it at compile time.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from runtime.contract.signing import (
    GITHUB_OIDC_ENV,
    IDENTITY_TOKEN_ENV,
    IN_TOTO_PAYLOAD_TYPE,
    SIGNING_KEY_ENV,
    pae,
)
from runtime.steps.pipeline_io import StepError

# The curves model-signing accepts, and the digest each pairs with (as model-signing does).
CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def public_key_id(public_pem: bytes) -> str:
    """The sha256 of a public key's PEM: model-signing's key hint, and the envelope's keyid."""
    return hashlib.sha256(public_pem).hexdigest()


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class Signer(Protocol):
    method: str  # "key" or "sigstore", recorded in the metadata

    def sign_model(self, model: Path, bundle: Path) -> None: ...

    def sign_statement(self, statement: Mapping[str, Any]) -> bytes: ...

    def describe(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class KeySigner:
    """An elliptic-curve key pair, read from a PEM file."""

    path: Path
    key: ec.EllipticCurvePrivateKey
    method: str = "key"

    @classmethod
    def load(cls, path: Path) -> KeySigner:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as exc:
            raise StepError(f"cannot read the signing key {path}: {exc.strerror}") from exc
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise StepError(
                f"{path} is not an unencrypted PEM private key: {exc}; create one with "
                "`openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 "
                "-nocrypt`"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in CURVE_HASH:
            raise StepError(
                f"{path} is not an elliptic-curve key on P-256, P-384 or P-521, the curves "
                "model-signing verifies"
            )
        return cls(path, key)

    def sign_model(self, model: Path, bundle: Path) -> None:
        from model_signing import signing

        signing.Config().use_elliptic_key_signer(private_key=self.path).sign(model, bundle)

    def sign_statement(self, statement: Mapping[str, Any]) -> bytes:
        payload = json.dumps(statement, sort_keys=True).encode("utf-8")
        digest = CURVE_HASH[self.key.curve.name]()
        signature = self.key.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload), ec.ECDSA(digest))
        envelope = {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [
                {
                    "keyid": public_key_id(public_pem(self.key)),
                    "sig": base64.b64encode(signature).decode("ascii"),
                }
            ],
        }
        return (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode("utf-8")

    def describe(self) -> dict[str, str]:
        return {"method": self.method, "public_key_sha256": public_key_id(public_pem(self.key))}


@dataclass(frozen=True)
class KeylessSigner:
    """Sigstore keyless: an explicit identity token, or the CI's ambient one."""

    token: str | None  # None: let sigstore-python detect the ambient credential
    method: str = "sigstore"

    def sign_model(self, model: Path, bundle: Path) -> None:
        from model_signing import signing

        config = signing.Config().use_sigstore_signer(
            identity_token=self.token, use_ambient_credentials=self.token is None
        )
        config.sign(model, bundle)

    def sign_statement(self, statement: Mapping[str, Any]) -> bytes:
        from sigstore import dsse, models, oidc, sign

        token = self.token or oidc.detect_credential()
        if not token:
            raise StepError("no Sigstore identity token could be obtained from the environment")
        context = sign.SigningContext.from_trust_config(models.ClientTrustConfig.production())
        payload = json.dumps(statement, sort_keys=True).encode("utf-8")
        with context.signer(oidc.IdentityToken(token)) as signer:
            bundle = signer.sign_dsse(dsse.Statement(payload))
        return bundle.to_json().encode("utf-8")

    def describe(self) -> dict[str, str]:
        return {"method": self.method}


def choose_signer(key: Path | None, environ: Mapping[str, str]) -> Signer | None:
    """The signer the flag and environment select (see the module's docstring)."""
    key_path = key or (Path(environ[SIGNING_KEY_ENV]) if environ.get(SIGNING_KEY_ENV) else None)
    if key_path is not None:
        return KeySigner.load(key_path)
    token = environ.get(IDENTITY_TOKEN_ENV, "").strip()
    if token:
        return KeylessSigner(token)
    if all(environ.get(name) for name in GITHUB_OIDC_ENV):
        return KeylessSigner(None)
    return None
