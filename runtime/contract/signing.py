"""Signed model versions: where the signature and provenance lie, and whom a server trusts.

The publish step writes, beside each artifact in the model store:

* `<artifact>.sig`: an OpenSSF model-signing bundle (a Sigstore bundle whose DSSE
  envelope holds an in-toto statement of the file's sha256);
* `<artifact>.provenance.json`: a DSSE envelope, or a Sigstore bundle when signed
  keyless, of an in-toto statement with a SLSA provenance predicate.

The compiler passes a `Trust` to the serving pod's assemble step as a JSON file
(`trust.json` in the model's ConfigMap) and to `kiln serve` in memory. Both read it
through this module, so the two sides cannot drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SIGNATURE_SUFFIX = ".sig"
PROVENANCE_SUFFIX = ".provenance.json"
TRUST_FILE = "trust.json"

# The publish step's environment: a key pair's private half (a path), or a Sigstore
# identity token (sigstore-python reads the same variable).
SIGNING_KEY_ENV = "KILN_SIGNING_KEY"
IDENTITY_TOKEN_ENV = "SIGSTORE_ID_TOKEN"  # noqa: S105 a variable name, not a token
# GitHub Actions sets both in a job with `permissions: id-token: write`.
GITHUB_OIDC_ENV = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")

IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: the bytes a DSSE signature is made over."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def signature_uri(artifact_uri: str) -> str:
    """Where the model-signing bundle of an artifact lies: beside it."""
    return artifact_uri + SIGNATURE_SUFFIX


def provenance_uri(artifact_uri: str) -> str:
    """Where the signed provenance statement of an artifact lies: beside it."""
    return artifact_uri + PROVENANCE_SUFFIX


class TrustError(ValueError):
    """A trust document that cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class TrustedIdentity:
    """A Sigstore keyless signer: the certificate's identity and its OIDC issuer."""

    identity: str  # e.g. a GitHub Actions workflow URL at a ref
    issuer: str  # e.g. https://token.actions.githubusercontent.com


@dataclass(frozen=True)
class Trust:
    """Whom a serving environment trusts to have signed its model versions."""

    public_keys: tuple[str, ...] = ()  # PEM texts of elliptic-curve public keys
    identities: tuple[TrustedIdentity, ...] = ()
    require_signatures: bool = False

    @property
    def declared(self) -> bool:
        return bool(self.public_keys or self.identities)

    def with_keys(self, *pems: str) -> Trust:
        """This trust with more public keys (the local key pair's, for `kiln serve`)."""
        added = tuple(p for p in pems if p not in self.public_keys)
        return Trust(self.public_keys + added, self.identities, self.require_signatures)

    def to_json(self) -> str:
        document = {
            "identities": [{"identity": i.identity, "issuer": i.issuer} for i in self.identities],
            "public_keys": list(self.public_keys),
            "require_signatures": self.require_signatures,
        }
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Trust:
        try:
            document: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrustError(f"not valid JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise TrustError("expected a JSON object")
        keys = document.get("public_keys", [])
        identities = document.get("identities", [])
        required = document.get("require_signatures", False)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise TrustError("public_keys must be a list of PEM texts")
        if not isinstance(identities, list) or not all(
            isinstance(i, dict)
            and isinstance(i.get("identity"), str)
            and isinstance(i.get("issuer"), str)
            for i in identities
        ):
            raise TrustError("identities must be a list of {identity, issuer} objects")
        if not isinstance(required, bool):
            raise TrustError("require_signatures must be true or false")
        return cls(
            tuple(keys),
            tuple(TrustedIdentity(i["identity"], i["issuer"]) for i in identities),
            required,
        )
