"""The assemble step verifies signatures before Triton starts, and fails closed.

Tamper cases run the init container's entry point (`main`, as the pod does) and check
that it exits non-zero and leaves no model folder, so Triton, the pod's main container,
has nothing to start. Real keys and real model-signing bundles throughout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from model_signing import signing

from runtime.contract.signing import Trust, TrustedIdentity
from runtime.serving.assemble import ArtifactSource, AssembleError, assemble, main
from tests.keys import key_pair
from tests.unit.runtime.serving.test_assemble import CONFIG, LOAN, sha256, tampered


@pytest.fixture()
def signed(tmp_path: Path) -> dict[str, Path | str]:
    """The example model signed with a fresh key: its copy, bundle, and public key."""
    key, public = key_pair(tmp_path / "keys")
    folder = tmp_path / "store"
    folder.mkdir()
    model = folder / "model.onnx"
    shutil.copyfile(LOAN, model)
    bundle = folder / "model.onnx.sig"
    signing.Config().use_elliptic_key_signer(private_key=key).sign(model, bundle)
    trust = tmp_path / "trust.json"
    trust.write_text(Trust(public_keys=(public,), require_signatures=True).to_json())
    return {"model": model, "bundle": bundle, "public": public, "trust": trust}


def run_assemble(tmp_path: Path, model: Path, *flags: str) -> int:
    config = tmp_path / "config.pbtxt"
    config.write_text(CONFIG)
    return main(
        [
            *("--model", "car-loan-default", "--config", str(config)),
            *("--repository", str(tmp_path / "models"), "--artifact", f"1={model}"),
            *flags,
        ]
    )


def refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The error printed; and nothing Triton could load was written."""
    assert not (tmp_path / "models" / "car-loan-default").exists()
    return capsys.readouterr().err


def test_a_signed_version_by_a_trusted_key_is_assembled(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_assemble(
        tmp_path,
        signed["model"],
        *("--sha256", f"1={sha256(signed['model'])}", "--signature", f"1={signed['bundle']}"),
        *("--trust", str(signed["trust"])),
    )
    assert code == 0, capsys.readouterr().err
    placed = tmp_path / "models" / "car-loan-default" / "1" / "model.onnx"
    assert placed.read_bytes() == LOAN.read_bytes()
    assert "sha256 verified, signed by key " in capsys.readouterr().out


def test_one_flipped_byte_is_refused_even_with_a_matching_sha256(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An attacker who can edit the spec's sha256 still cannot forge the signature."""
    bad = tampered(signed["model"], tmp_path / "tampered.onnx")
    code = run_assemble(
        tmp_path,
        bad,
        *("--sha256", f"1={sha256(bad)}", "--signature", f"1={signed['bundle']}"),
        *("--trust", str(signed["trust"])),
    )
    assert code == 1
    error = refused(tmp_path, capsys)
    assert "no trusted signer verifies it" in error and "Signature mismatch" in error


def test_one_flipped_byte_is_refused_by_the_digest_first(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tampered(signed["model"], tmp_path / "tampered.onnx")
    code = run_assemble(
        tmp_path,
        bad,
        *("--sha256", f"1={sha256(signed['model'])}", "--signature", f"1={signed['bundle']}"),
        *("--trust", str(signed["trust"])),
    )
    assert code == 1
    assert "sha256 mismatch" in refused(tmp_path, capsys)


def test_a_signature_by_an_untrusted_key_is_refused(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, other = key_pair(tmp_path / "other")
    trust = tmp_path / "other-trust.json"
    trust.write_text(Trust(public_keys=(other,)).to_json())
    code = run_assemble(
        tmp_path, signed["model"], "--signature", f"1={signed['bundle']}", "--trust", str(trust)
    )
    assert code == 1
    assert "Key mismatch" in refused(tmp_path, capsys)


def test_a_missing_signature_is_refused_when_signatures_are_required(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_assemble(tmp_path, signed["model"], "--trust", str(signed["trust"]))
    assert code == 1
    assert "has no signature and this environment requires signatures" in refused(tmp_path, capsys)


def test_a_missing_bundle_file_is_refused(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = tmp_path / "nowhere.sig"
    code = run_assemble(
        tmp_path, signed["model"], "--signature", f"1={absent}", "--trust", str(signed["trust"])
    )
    assert code == 1
    assert "artifact not found" in refused(tmp_path, capsys)


def test_a_signature_without_any_trust_is_refused(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_assemble(tmp_path, signed["model"], "--signature", f"1={signed['bundle']}")
    assert code == 1
    assert "no trusted public key or identity was given" in refused(tmp_path, capsys)


def test_an_unreadable_trust_file_is_refused(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"public_keys": "not a list"}')
    code = run_assemble(tmp_path, signed["model"], "--trust", str(broken))
    assert code == 1
    assert "public_keys must be a list" in refused(tmp_path, capsys)


def test_a_keyless_bundle_with_an_untrusted_identity_fails_closed(
    signed: dict[str, Path], tmp_path: Path
) -> None:
    """A key-signed bundle checked against an identity only: refused, not let through."""
    trust = Trust(identities=(TrustedIdentity("ci@example.com", "https://issuer.example"),))
    source = ArtifactSource(1, str(signed["model"]), None, str(signed["bundle"]))
    with pytest.raises(AssembleError, match=r"identity ci@example\.com"):
        assemble("car-loan-default", [source], CONFIG, tmp_path / "models", trust=trust)
    assert not (tmp_path / "models" / "car-loan-default").exists()


def test_a_refused_version_leaves_the_previous_repository_in_place(
    signed: dict[str, Path], tmp_path: Path
) -> None:
    trust = Trust(public_keys=(str(signed["public"]),))
    good = ArtifactSource(1, str(signed["model"]), None, str(signed["bundle"]))
    repository = tmp_path / "models"
    assemble("car-loan-default", [good], CONFIG, repository, trust=trust)
    before = (repository / "car-loan-default" / "1" / "model.onnx").read_bytes()
    bad = tampered(signed["model"], tmp_path / "tampered.onnx")
    forged = ArtifactSource(1, str(bad), None, str(signed["bundle"]))
    with pytest.raises(AssembleError, match="was not changed"):
        assemble("car-loan-default", [forged], CONFIG, repository, trust=trust)
    assert (repository / "car-loan-default" / "1" / "model.onnx").read_bytes() == before
