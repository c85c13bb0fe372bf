"""`kiln explain` on a served model's file shows each served version's signed provenance."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.cli import cli
from tests.signed_platform import DATA_SHA256, MODEL, STORE, signed_platform

CONFIG = "generated/local/car-price/triton/config.pbtxt"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = signed_platform(tmp_path_factory.mktemp("signed"))
    specs, out = str(root / "specs"), str(root / "generated")
    result = CliRunner().invoke(cli, ["compile", "--specs", specs, "--out", out])
    assert result.exit_code == 0, result.output
    return root


def explained(root: Path, path: str) -> list[str]:
    specs, out = str(root / "specs"), str(root / "generated")
    result = CliRunner().invoke(cli, ["explain", str(root / path), "--specs", specs, "--out", out])
    assert result.exit_code == 0, result.output
    lines: list[str] = result.output.splitlines()
    return lines[lines.index("served versions of car-price in local:") :]


def test_the_served_version_shows_its_verified_provenance(platform: Path) -> None:
    lines = explained(platform, CONFIG)
    assert (
        lines[1]
        == "  version 2  provenance specs/artifacts/models/car-price/2/model.onnx.provenance.json"
    )
    assert lines[2] == "    signed by trusted key 1 of the environment's signing.public_keys"
    assert "(matches)" in lines[3]
    text = "\n".join(lines)
    assert f"feature-snapshot: sha256:{DATA_SHA256}" in text
    assert "spec: gitCommit:0123abc" in text
    assert '"seed": 7' in text and '"estimator": "hist_gradient_boosting"' in text
    assert 'evaluation-metrics: {"mae": 849.34}' in text
    assert "kiln: " in text and "kiln: unknown" not in text


def test_a_rewritten_statement_is_not_verified(platform: Path, tmp_path: Path) -> None:
    """Someone edits the provenance (a better metric) without the key: explain says so."""
    path = platform / STORE / "car-price/2/model.onnx.provenance.json"
    original = path.read_text()
    envelope = json.loads(original)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["runDetails"]["byproducts"][0]["annotations"]["mae"] = 1.0
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(envelope))
    try:
        lines = explained(platform, CONFIG)
    finally:
        path.write_text(original)
    assert lines[2] == "    signature NOT verified by any trusted key"


def test_the_published_bytes_are_the_example_model(platform: Path) -> None:
    assert (platform / STORE / "car-price/2/model.onnx").read_bytes() == MODEL.read_bytes()
