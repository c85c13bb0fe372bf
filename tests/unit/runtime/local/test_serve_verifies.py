"""`kiln serve` verifies sha256 and signature before it fetches or starts Triton.

The tamper cases run the real command on a copy of the example platform whose car-price
version names a signature bundle. Each must exit non-zero, and neither tritonserver's
preparation nor its start may be reached: both are replaced by functions that fail the
test if called (nothing else is replaced; the signatures are real).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from model_signing import signing

from compiler.cli import cli
from runtime.local import serve as local_serve
from runtime.local.keys import local_key_pair
from tests.keys import key_pair
from tests.tools import REPO_ROOT

SPEC = Path("specs/models/car-price.yaml")
ARTIFACT = Path("specs/artifacts/models/car-price/1/model.onnx")
SIGNATURE_LINE = "        signature: car-price/1/model.onnx.sig\n"
SHA256 = re.compile(r"sha256: [0-9a-f]{64}")


@pytest.fixture()
def triton_never_started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def prepare(cache: Path) -> None:
        calls.append("prepare_runtime")
        raise AssertionError("tritonserver was prepared for a model that must be refused")

    def start(self: local_serve.TritonServer) -> None:
        calls.append("start")
        raise AssertionError("tritonserver was started for a model that must be refused")

    monkeypatch.setattr(local_serve, "prepare_runtime", prepare)
    monkeypatch.setattr(local_serve.TritonServer, "start", start)
    return calls


def platform(tmp_path: Path, policy: str = "") -> Path:
    """A copy of the example specs; car-price's version 1 names `model.onnx.sig`."""
    root = tmp_path / "platform"
    shutil.copytree(REPO_ROOT / "specs", root / "specs")
    spec = root / SPEC
    text = spec.read_text()
    assert SIGNATURE_LINE not in text
    uri = "        uri: car-price/1/model.onnx\n"
    spec.write_text(text.replace(uri, uri + SIGNATURE_LINE, 1))
    if policy:
        project = root / "specs" / "project.yaml"
        project.write_text(
            project.read_text().replace(
                "      kind: local\n", f"      kind: local\n      policy: {policy}\n", 1
            )
        )
    return root


def sign(root: Path, key: Path) -> Path:
    model = root / ARTIFACT
    bundle = model.with_name("model.onnx.sig")
    signing.Config().use_elliptic_key_signer(private_key=key).sign(model, bundle)
    return bundle


def compile_and_serve(root: Path) -> tuple[int, str]:
    specs, generated = str(root / "specs"), str(root / "generated")
    runner = CliRunner()
    compiled = runner.invoke(cli, ["compile", "--specs", specs, "--out", generated])
    if compiled.exit_code != 0:
        return compiled.exit_code, compiled.output
    served = runner.invoke(
        cli, ["serve", "car-price", "--specs", specs, "--generated", generated, "--http-port=0"]
    )
    return served.exit_code, served.output


def test_the_spec_names_the_version_this_test_signs(tmp_path: Path) -> None:
    assert SIGNATURE_LINE in (platform(tmp_path) / SPEC).read_text()


def test_a_flipped_byte_is_refused_even_with_the_spec_digest_updated(
    tmp_path: Path, triton_never_started: list[str]
) -> None:
    root = platform(tmp_path)
    sign(root, local_key_pair().private)
    model = root / ARTIFACT
    data = bytearray(model.read_bytes())
    # A byte of the producer's name: the model still loads, so only the signature can tell.
    data[data.index(b"skl2onnx") + 7] ^= 0x01
    model.write_bytes(bytes(data))
    spec = root / SPEC
    digest = hashlib.sha256(bytes(data)).hexdigest()
    spec.write_text(SHA256.sub(f"sha256: {digest}", spec.read_text(), count=1))
    code, output = compile_and_serve(root)
    assert code == 1, output
    assert "no trusted signer verifies it" in output and "Signature mismatch" in output
    assert triton_never_started == []


def test_a_signature_by_an_untrusted_key_is_refused(
    tmp_path: Path, triton_never_started: list[str]
) -> None:
    root = platform(tmp_path)
    stranger, _ = key_pair(tmp_path / "stranger")
    sign(root, stranger)
    code, output = compile_and_serve(root)
    assert code == 1, output
    assert "Key mismatch" in output
    assert triton_never_started == []


def test_a_missing_signature_is_refused_under_require_signatures(
    tmp_path: Path, triton_never_started: list[str]
) -> None:
    root = platform(tmp_path, policy="{require_signatures: true}")
    spec = root / SPEC
    spec.write_text(spec.read_text().replace(SIGNATURE_LINE, ""))
    code, output = compile_and_serve(root)
    assert code == 1, output
    assert "KILN1608" in output
    served = CliRunner().invoke(
        cli,
        [
            "serve",
            "car-price",
            "--specs",
            str(root / "specs"),
            "--generated",
            str(REPO_ROOT / "generated"),
        ],
    )
    assert served.exit_code == 1, served.output
    assert "requires signatures; version 1 names no artifact.signature" in served.output
    assert triton_never_started == []


def test_a_bundle_that_is_not_there_is_refused(
    tmp_path: Path, triton_never_started: list[str]
) -> None:
    code, output = compile_and_serve(platform(tmp_path))
    assert code == 1, output
    assert "artifact not found" in output and "model.onnx.sig" in output
    assert triton_never_started == []
