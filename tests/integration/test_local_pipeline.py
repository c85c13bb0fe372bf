"""`kiln run MODEL --local`: the example models train, evaluate, validate and publish.

Runs the real pipeline steps as subprocesses on NannyML's bundled data, in a
copy of the example platform, so the repository is never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.cli import cli

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("platform")
    shutil.copytree(ROOT / "specs", root / "specs")
    subprocess.run(
        [sys.executable, "-m", "runtime.examples.example_data", "--out", str(root / ".kiln/data")],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return root


def _run(project: Path, model: str, runs: str, store: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        [
            "run",
            model,
            "--local",
            "--specs",
            str(project / "specs"),
            "--runs",
            str(project / runs),
            "--store",
            str(project / store),
        ],
    )
    return result.exit_code, result.output


def test_car_loan_trains_and_publishes_reproducibly(project: Path) -> None:
    code, output = _run(project, "car-loan-default", "runs-a", "store-a")
    assert code == 0, output
    for step in ("features", "train", "evaluate", "validate", "publish"):
        assert f"] {step}:" in output
    first = (project / "store-a/car-loan-default/2/model.onnx").read_bytes()
    assert (project / "store-a/car-loan-default/2/metadata.json").is_file()
    # Signed with this machine's key pair (made on first use, outside the project).
    log = (project / "runs-a/car-loan-default/run-1/publish.log").read_text()
    assert "signed (key)" in log, log
    bundle = project / "store-a/car-loan-default/2/model.onnx.sig"
    assert bundle.is_file() and bundle.with_name("model.onnx.provenance.json").is_file()
    assert not list(project.rglob("signing.pem"))
    code, output = _run(project, "car-loan-default", "runs-b", "store-b")
    assert code == 0, output
    second = (project / "store-b/car-loan-default/2/model.onnx").read_bytes()
    assert first == second  # same inputs, same seed: the same artifact, byte for byte
    digest = (project / "runs-a/car-loan-default/run-1/publish/sha256").read_text().strip()
    assert f"(sha256 {digest})" in output
    patch = project / "runs-a/car-loan-default/run-1/publish/spec.patch"
    assert "+    - version: 2" in patch.read_text() or "version: 2" in patch.read_text()
    checkout = project / "checkout"
    shutil.copytree(project / "specs", checkout / "specs", dirs_exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=checkout, check=True)
    check = subprocess.run(
        ["git", "apply", "--check", str(patch)], cwd=checkout, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_a_gate_above_the_model_stops_the_pipeline(project: Path, tmp_path: Path) -> None:
    strict = tmp_path / "platform"
    shutil.copytree(project / "specs", strict / "specs")
    shutil.copytree(project / ".kiln", strict / ".kiln")
    spec = strict / "specs/models/car-loan-default.yaml"
    spec.write_text(
        spec.read_text().replace("{metric: roc_auc, min: 0.85}", "{metric: roc_auc, min: 0.99}")
    )
    code, output = _run(strict, "car-loan-default", "runs", "store")
    assert code == 1
    assert "gate failed: roc_auc" in output and "below the minimum 0.99" in output
    assert "[3/5] evaluate" in output and "[4/5] validate" not in output
    assert not (strict / "store").exists()


def test_car_price_regression_trains_and_publishes(project: Path) -> None:
    code, output = _run(project, "car-price", "runs-price", "store-price")
    assert code == 0, output
    assert (project / "store-price/car-price/2/model.onnx").is_file()
    metrics = (project / "runs-price/car-price/run-1/evaluate/metrics.json").read_text()
    assert '"mae"' in metrics
