"""Every model of the example platform, whatever its format, served by the real `kiln
serve` on the local Triton and checked by the real `kiln smoke` against its own library
in process, then stopped with SIGTERM: the commands a user types, in a copy of the
platform (capture writes under the project, never into the repository).

The models are read from specs/models, so a model added to the platform is covered
without touching this file. Skips only where the platform cannot run the bundled
tritonserver; in CI nothing may skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from runtime.local.triton_dist import PlatformError, check_platform
from tests.tools import REPO_ROOT

pytestmark = pytest.mark.slow

MODELS = sorted(path.stem for path in (REPO_ROOT / "specs" / "models").glob("*.yaml"))
KILN = [sys.executable, "-m", "compiler"]
READY_S = 180  # a first TorchScript serve builds the backend venv with torch


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        check_platform()
    except PlatformError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must serve the example platform: {exc}")
        pytest.skip(f"this platform cannot run the bundled tritonserver: {exc}")
    root = tmp_path_factory.mktemp("platform")
    for folder in ("specs", "generated"):
        shutil.copytree(REPO_ROOT / folder, root / folder)
    return root


def _ready(url: str, process: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


@pytest.mark.parametrize("model", MODELS)
def test_kiln_serve_and_kiln_smoke_pass_for_every_example_model(platform: Path, model: str) -> None:
    http, grpc, metrics = _free_port(), _free_port(), _free_port()
    serve = [*KILN, "serve", model, "--http-port", str(http), "--grpc-port", str(grpc)]
    serve += ["--metrics-port", str(metrics)]
    process = subprocess.Popen(
        serve, cwd=platform, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        ready = _ready(f"http://127.0.0.1:{http}/v2/models/{model}/ready", process)
        assert ready, f"{model} never became ready"
        smoke = subprocess.run(
            [*KILN, "smoke", model, "--url", f"127.0.0.1:{http}", "--requests", "5"],
            cwd=platform,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        # Each output compared with the format's own library, then the verdict.
        assert "the in-process reference" in smoke.stdout, smoke.stdout
        assert smoke.stdout.rstrip().endswith("smoke: passed"), smoke.stdout
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
