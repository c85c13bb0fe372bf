"""Signing at publish (runtime/steps/signing.py, provenance.py): real keys, real model-signing.

The Sigstore keyless path needs Fulcio, Rekor and an OIDC token, none of which a test
here can reach: only its selection is tested (which signer the flag and environment
choose), not a keyless signature.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import verifying
from ruamel.yaml import YAML

from runtime.contract.signing import SLSA_PROVENANCE, pae
from runtime.steps import publish
from runtime.steps.pipeline_io import StepError
from runtime.steps.signing import KeylessSigner, KeySigner, choose_signer
from tests.keys import key_pair
from tests.unit.runtime.steps.test_publish import LOAN, LOAN_SHA, METRICS, argv, inputs

__all__ = ["inputs"]  # the fixture, imported for its name

TRAINER = '{"args":["--trees","50"],"command":["python","-m","train"],"holdout":0.2}'


# ------------------------------------------------------------------ selection


def test_an_explicit_key_wins_over_the_environment(tmp_path: Path) -> None:
    flag, _ = key_pair(tmp_path, "flag")
    env, _ = key_pair(tmp_path, "env")
    environ = {"KILN_SIGNING_KEY": str(env), "SIGSTORE_ID_TOKEN": "token"}
    signer = choose_signer(flag, environ)
    assert isinstance(signer, KeySigner) and signer.path == flag


def test_the_key_variable_comes_before_a_token(tmp_path: Path) -> None:
    env, _ = key_pair(tmp_path)
    signer = choose_signer(None, {"KILN_SIGNING_KEY": str(env), "SIGSTORE_ID_TOKEN": "t"})
    assert isinstance(signer, KeySigner) and signer.path == env


def test_an_identity_token_selects_keyless() -> None:
    assert choose_signer(None, {"SIGSTORE_ID_TOKEN": "eyJ.token"}) == KeylessSigner("eyJ.token")


def test_github_actions_oidc_selects_ambient_keyless() -> None:
    environ = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "https://example.invalid/token",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
    }
    assert choose_signer(None, environ) == KeylessSigner(None)
    # Half of GitHub's pair is not a token source: nothing is selected.
    assert choose_signer(None, {"ACTIONS_ID_TOKEN_REQUEST_URL": "https://x.invalid"}) is None


def test_nothing_configured_selects_no_signer() -> None:
    assert choose_signer(None, {"SIGSTORE_ID_TOKEN": "  "}) is None


def test_a_key_that_is_not_an_ec_private_key_is_refused(tmp_path: Path) -> None:
    _, public = key_pair(tmp_path)
    (tmp_path / "public.pem").write_text(public)
    with pytest.raises(StepError, match="is not an unencrypted PEM private key"):
        choose_signer(tmp_path / "public.pem", {})
    with pytest.raises(StepError, match="cannot read the signing key"):
        choose_signer(tmp_path / "absent.pem", {})


# ------------------------------------------------------------------ DSSE


def test_a_statement_envelope_verifies_with_the_public_key(tmp_path: Path) -> None:
    path, public = key_pair(tmp_path)
    envelope = json.loads(KeySigner.load(path).sign_statement({"_type": "x", "n": 1}))
    payload = base64.b64decode(envelope["payload"])
    assert json.loads(payload) == {"_type": "x", "n": 1}
    key = serialization.load_pem_public_key(public.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    key.verify(signature, pae(envelope["payloadType"], payload), ec.ECDSA(hashes.SHA256()))
    tampered = payload.replace(b"1", b"2")
    with pytest.raises(InvalidSignature):
        key.verify(signature, pae(envelope["payloadType"], tampered), ec.ECDSA(hashes.SHA256()))


# ------------------------------------------------------------------ publish


def signed_publish(inputs: dict[str, Path], tmp_path: Path, key: Path, out: str = "out") -> int:
    extra = ("--signing-key", str(key), "--trainer", TRAINER)
    return publish.main(argv(inputs, tmp_path / "store", tmp_path / out, LOAN, *extra))


def test_a_signed_version_has_its_bundle_and_provenance_beside_it(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    key, public = key_pair(tmp_path / "keys")
    assert signed_publish(inputs, tmp_path, key) == 0
    folder = tmp_path / "store" / "car-loan-default" / "2"
    assert sorted(p.name for p in folder.iterdir()) == [
        "metadata.json",
        "model.onnx",
        "model.onnx.provenance.json",
        "model.onnx.sig",
    ]
    (tmp_path / "trusted.pub").write_text(public)
    config = verifying.Config().use_elliptic_key_verifier(public_key=tmp_path / "trusted.pub")
    config.verify(folder / "model.onnx", folder / "model.onnx.sig")  # raises if it fails
    record = json.loads((folder / "metadata.json").read_text())
    assert record["signature"]["bundle"] == "car-loan-default/2/model.onnx.sig"
    assert record["signature"]["method"] == "key"
    assert record["provenance"] == "car-loan-default/2/model.onnx.provenance.json"
    entry = YAML(typ="safe").load((tmp_path / "out" / "version.yaml").read_text())
    assert entry["artifact"]["signature"] == "car-loan-default/2/model.onnx.sig"


def test_the_provenance_names_every_input(inputs: dict[str, Path], tmp_path: Path) -> None:
    key, _ = key_pair(tmp_path / "keys")
    assert signed_publish(inputs, tmp_path, key) == 0
    envelope = json.loads((tmp_path / "out" / "model.onnx.provenance.json").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == SLSA_PROVENANCE
    assert statement["subject"] == [
        {"name": "car-loan-default/2/model.onnx", "digest": {"sha256": LOAN_SHA}}
    ]
    build = statement["predicate"]["buildDefinition"]
    inputs_by_name = {d["name"]: d for d in build["resolvedDependencies"]}
    assert inputs_by_name["feature-snapshot"]["digest"] == {"sha256": "d" * 64}
    assert inputs_by_name["spec"]["digest"] == {"gitCommit": "abc123"}
    assert inputs_by_name["training-image"]["digest"] == {"sha256": "ab" * 32}
    assert build["externalParameters"]["trainer"] == {
        "args": ["--trees", "50"],
        "command": ["python", "-m", "train"],
        "holdout": 0.2,
        "seed": 0,
    }
    assert build["internalParameters"]["kiln_version"] not in ("", "unknown")
    byproducts = statement["predicate"]["runDetails"]["byproducts"]
    assert byproducts[0] == {"name": "evaluation-metrics", "annotations": METRICS}


def test_a_retried_publish_keeps_the_first_signature(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = key_pair(tmp_path / "keys")
    assert signed_publish(inputs, tmp_path, key, "a") == 0
    store = tmp_path / "store"
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert signed_publish(inputs, tmp_path, key, "b") == 0
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    assert "already signs this version; kept" in capsys.readouterr().out
    bundle = "model.onnx.sig"
    assert (tmp_path / "a" / bundle).read_bytes() == (tmp_path / "b" / bundle).read_bytes()


def test_unsigned_publishing_says_so_and_records_no_signature(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish.main(argv(inputs, tmp_path / "store", tmp_path / "out")) == 0
    assert "NOT signed" in capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert record["signature"] is None and record["provenance"] is None


def test_a_bad_trainer_document_fails_before_anything_is_written(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    key, _ = key_pair(tmp_path / "keys")
    extra = ("--signing-key", str(key), "--trainer", "[1, 2]")
    assert publish.main(argv(inputs, tmp_path / "store", tmp_path / "out", LOAN, *extra)) == 1
    assert not (tmp_path / "store").exists()
