"""An environment's `signing` section: whom it trusts to have signed its model versions,
and the Secret its publish step signs with.

Public keys are elliptic-curve keys in PEM (the curves OpenSSF model-signing verifies);
identities are Sigstore keyless signers, an OIDC identity and its issuer. Both are
checked here, at their line: a key that does not parse or an issuer that is not an
https URL never reaches the serving pod. A private key pasted by mistake is caught with
every other secret before this (compiler/inert_text.py, KILN1209, with its own hint).
"""

from __future__ import annotations

import re
from typing import Annotated

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import AfterValidator, Field, WithJsonSchema

from compiler.spec.types import SecretRef, SpecModel, fail, shown

CURVES = ("secp256r1", "secp384r1", "secp521r1")
_ISSUER = re.compile(r"https://[A-Za-z0-9.-]+(:\d+)?(/[!-~]*)?")
_IDENTITY = re.compile(r"[!-~]+")  # printable ASCII, no spaces: an email or a URI


def _check_public_key(value: str) -> str:
    try:
        key = load_pem_public_key(value.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm):
        raise fail(
            "KILN1230",
            "not a PEM public key; paste the whole `-----BEGIN PUBLIC KEY-----` block "
            "(e.g. signing.pub), as a YAML block scalar `|`",
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in CURVES:
        raise fail(
            "KILN1230",
            "not an elliptic-curve key on P-256, P-384 or P-521, the curves model-signing "
            "verifies; make one with `openssl ecparam -name prime256v1 -genkey`",
        )
    return value


def _check_issuer(value: str) -> str:
    if not _ISSUER.fullmatch(value):
        raise fail(
            "KILN1231",
            f"{shown(value)} is not an OIDC issuer; write its https URL, e.g. "
            "https://token.actions.githubusercontent.com",
        )
    return value


def _check_identity(value: str) -> str:
    if not _IDENTITY.fullmatch(value):
        raise fail(
            "KILN1231",
            f"{shown(value)} is not a signer identity; write the certificate's identity "
            "without spaces: an email, or a workflow URL such as https://github.com/OWNER/"
            "REPO/.github/workflows/train.yml@refs/heads/main",
        )
    return value


PublicKeyPem = Annotated[str, AfterValidator(_check_public_key), WithJsonSchema({"type": "string"})]
Issuer = Annotated[str, AfterValidator(_check_issuer), WithJsonSchema({"type": "string"})]
Identity = Annotated[str, AfterValidator(_check_identity), WithJsonSchema({"type": "string"})]


class TrustedIdentity(SpecModel):
    """A Sigstore keyless signer: the identity in its certificate and who vouched for it."""

    identity: Identity = Field(description="Certificate identity: an email or workflow URL.")
    issuer: Issuer = Field(description="OIDC issuer URL that issued the signer's token.")


class Signing(SpecModel):
    """Who may sign the model versions this environment serves."""

    public_keys: list[PublicKeyPem] = Field(
        default_factory=list, description="Trusted elliptic-curve public keys, in PEM."
    )
    identities: list[TrustedIdentity] = Field(
        default_factory=list, description="Trusted Sigstore keyless signers."
    )
    key_secret: SecretRef | None = Field(
        None,
        description="Secret key holding the elliptic-curve private key (PEM) the training "
        "workflow's publish step signs with; without it publish signs keyless when an OIDC "
        "token is present, else leaves the version unsigned.",
    )
