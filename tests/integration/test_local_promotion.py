"""The local loop on the example platform: `kiln run --local` publishes where the local
environment serves from, `kiln promote` puts that version in the spec, and a real
local Triton serves it, checked by `kiln smoke`.

Runs the real pipeline steps and the real tritonserver, in a copy of the platform.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.api import compile_tree
from compiler.cli import cli
from tests.local_serve import serving
from tests.tools import REPO_ROOT

pytestmark = pytest.mark.slow
MODEL = "car-loan-default"
SPEC = "specs/models/car-loan-default.yaml"
STORE = "specs/artifacts/models"  # the local environment's storage.models


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("platform")
    shutil.copytree(REPO_ROOT / "specs", root / "specs")
    assert compile_tree(root / "specs", root / "generated").ok
    subprocess.run(
        [sys.executable, "-m", "runtime.examples.example_data", "--out", str(root / ".kiln/data")],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    return root


def kiln(root: Path, *args: str) -> tuple[str, float]:
    started = time.perf_counter()
    result = CliRunner().invoke(cli, [*args, "--specs", str(root / "specs")])
    assert result.exit_code == 0, result.output
    return result.output, time.perf_counter() - started


def test_run_publishes_into_the_local_store_and_promote_serves_it(project: Path) -> None:
    output, run_s = kiln(project, "run", MODEL, "--local", "--runs", str(project / "runs"))
    assert f"to {STORE}" in output
    run = project / "runs" / MODEL / "run-1"
    version = project / STORE / MODEL / "2"
    record = json.loads((version / "metadata.json").read_text())
    # The record promote reads: what the run's own steps computed.
    assert record["artifact"]["sha256"] == (run / "publish/sha256").read_text().strip()
    assert record["data_sha256"] == (run / "features/sha256").read_text().strip()
    assert record["as_of"] == (run / "features/as_of").read_text().strip()
    evaluation = json.loads((run / "evaluate/evaluation.json").read_text())
    assert record["gates"] == {"passed": True, "results": evaluation["gates"]}
    assert record["metrics"] == evaluation["metrics"]
    before = (project / SPEC).read_text()
    started = time.perf_counter()
    promoted = CliRunner().invoke(
        cli,
        ["promote", MODEL, "--specs", str(project / "specs"), "--out", str(project / "generated")],
    )
    promote_s = time.perf_counter() - started
    assert promoted.exit_code == 0, promoted.output
    assert "serving version 1 -> 2" in promoted.output
    after = (project / SPEC).read_text()
    assert after.count("\n") == before.count("\n") + 6  # the entry (signed: 6 lines)
    assert "        signature: car-loan-default/2/model.onnx.sig" in after
    command = [
        *(sys.executable, "-m", "compiler", "serve", MODEL, "--specs", "specs"),
        *("--generated", "generated", "--http-port=0", "--grpc-port=0", "--metrics-port=0"),
    ]
    with serving(command, project, project / "serve.log") as http:
        smoke = CliRunner().invoke(
            cli,
            [
                *("smoke", MODEL, "--url", http, "--specs", str(project / "specs")),
                *("--rows", "64", "--requests", "5"),
            ],
        )
    assert smoke.exit_code == 0, smoke.output
    assert "version(s) [2] ready" in smoke.output
    print(f"kiln run {run_s:.1f} s, kiln promote {promote_s:.1f} s")
