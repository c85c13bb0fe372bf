"""The provenance of a model's served versions, as `kiln explain` shows it.

Publish writes `<artifact>.provenance.json` beside each signed artifact: a DSSE envelope
of an in-toto statement (SLSA provenance), signed with the publishing key, or a Sigstore
bundle holding such an envelope when signed keyless. Here it is read (local stores only:
a remote store's URI is named, not fetched, so explaining a file never needs the
network or credentials), its key signature checked against the environment's trusted
keys, and its inputs listed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from compiler.ir import ArtifactIR, ModelIR
from compiler.resolve import local_path
from runtime.contract.signing import Trust, pae, provenance_uri

# The digest model-signing pairs with each curve; the publish step signs the same way.
_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


class Unreadable(Exception):
    """The provenance file is missing or not a DSSE envelope; the message says which."""


def envelope_of(document: Any) -> dict[str, Any]:
    """The DSSE envelope: the document itself, or the one inside a Sigstore bundle."""
    envelope = document.get("dsseEnvelope", document) if isinstance(document, dict) else None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("payload"), str):
        raise Unreadable("it holds no DSSE envelope")
    return envelope


def signed_by(envelope: dict[str, Any], trust: Trust) -> str | None:
    """Which trusted key signed the envelope (its index, 1-based), or None."""
    payload = base64.b64decode(envelope["payload"])
    message = pae(str(envelope.get("payloadType", "")), payload)
    for signature in envelope.get("signatures") or []:
        raw = base64.b64decode(str(signature.get("sig", "")))
        for index, pem in enumerate(trust.public_keys, start=1):
            key = load_pem_public_key(pem.encode("utf-8"))
            if not isinstance(key, ec.EllipticCurvePublicKey):
                continue
            try:
                key.verify(raw, message, ec.ECDSA(_HASH[key.curve.name]()))
            except InvalidSignature:
                continue
            return f"trusted key {index} of the environment's signing.public_keys"
    return None


def _inputs(statement: dict[str, Any]) -> list[str]:
    predicate = statement.get("predicate") or {}
    build = predicate.get("buildDefinition") or {}
    lines = []
    for dependency in build.get("resolvedDependencies") or []:
        digest = ", ".join(f"{k}:{v}" for k, v in (dependency.get("digest") or {}).items())
        where = dependency.get("uri", "")
        lines.append(f"      {dependency.get('name')}: {' '.join(p for p in (where, digest) if p)}")
    parameters = build.get("externalParameters") or {}
    lines.append(f"      trainer: {json.dumps(parameters.get('trainer'), sort_keys=True)}")
    kiln = (build.get("internalParameters") or {}).get("kiln_version")
    lines.append(f"      kiln: {kiln}")
    for product in (predicate.get("runDetails") or {}).get("byproducts") or []:
        values = json.dumps(product.get("annotations"), sort_keys=True)
        lines.append(f"      {product.get('name')}: {values}")
    return lines


def describe_version(artifact: ArtifactIR, root: Path, trust: Trust) -> list[str]:
    """The lines for one served version: where its provenance is, who signed it, inputs."""
    uri = provenance_uri(artifact.uri)
    head = f"  version {artifact.version}  provenance {uri}"
    if artifact.signature is None:
        return [f"  version {artifact.version}  not signed: no artifact.signature, no provenance"]
    if not artifact.local:
        return [head, "    (in a remote store: not fetched; read it with your store's tools)"]
    try:
        document = json.loads(local_path(uri, root).read_text(encoding="utf-8"))
        envelope = envelope_of(document)
        statement = json.loads(base64.b64decode(envelope["payload"]))
    except OSError as exc:
        return [head, f"    not readable: {exc.strerror}"]
    except (Unreadable, ValueError, binascii.Error) as exc:
        return [head, f"    not a provenance statement: {exc}"]
    if "dsseEnvelope" in document:
        verdict = "signed keyless (Sigstore bundle; `sigstore verify` checks it online)"
    else:
        who = signed_by(envelope, trust)
        verdict = f"signed by {who}" if who else "signature NOT verified by any trusted key"
    subject = (statement.get("subject") or [{}])[0]
    digest = (subject.get("digest") or {}).get("sha256")
    matches = (
        "matches" if digest == artifact.sha256 else f"differs from the spec's {artifact.sha256}"
    )
    return [
        head,
        f"    {verdict}",
        f"    subject {subject.get('name')} sha256 {digest} ({matches})",
        "    inputs:",
        *_inputs(statement),
    ]


def provenance_lines(model: ModelIR, root: Path, trust: Trust) -> list[str]:
    """Every served version's provenance, under a heading."""
    lines = [f"served versions of {model.name} in {model.environment.name}:"]
    if not model.is_served:
        lines.append("    none: not served yet")
    for artifact in model.served:
        lines += describe_version(artifact, root, trust)
    return lines
