"""Publish, sign, assemble, serve: a signed version end to end on a real local Triton.

The publish step signs the example car-price model with this machine's key pair
(tests/signed_platform.py), the spec change is applied, `kiln compile` and then `kiln
serve` run as a user would: serve verifies the sha256 and the signature, Triton starts
and answers `kiln smoke`. The refusals are in tests/unit/runtime/local/
test_serve_verifies.py (they never reach Triton, so they need no server).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.cli import cli
from compiler.cli.serving import smoke as smoke_command
from runtime.local.backend_env import BackendEnvError, ensure_backend_env
from runtime.local.triton_dist import (
    CACHE_ENV,
    DistributionError,
    PlatformError,
    check_platform,
    default_cache,
    ensure_triton,
)
from tests.signed_platform import signed_platform

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache() -> Path:
    """The local Triton's cache, prepared once (skipped where the platform cannot run it)."""
    try:
        check_platform()
    except PlatformError as exc:
        pytest.skip(f"this platform cannot run the bundled tritonserver: {exc}")
    folder = default_cache()
    try:
        ensure_triton(folder)
        ensure_backend_env(folder)
    except (DistributionError, BackendEnvError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the local Triton tests, but a download failed: {exc}")
        pytest.skip(f"the local Triton could not be downloaded or prepared: {exc}")
    return folder


def read_until_ready(process: subprocess.Popen[str], seconds: float) -> str:
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Ctrl-C stops it."):
            break
    return "".join(lines)


def test_a_published_signed_version_is_verified_and_served(cache: Path, tmp_path: Path) -> None:
    root = signed_platform(tmp_path / "platform")
    specs, generated = root / "specs", root / "generated"
    compiled = CliRunner().invoke(cli, ["compile", "--specs", str(specs), "--out", str(generated)])
    assert compiled.exit_code == 0, compiled.output
    command = [
        *(sys.executable, "-c", "from compiler.cli.serving import serve; serve()", "car-price"),
        *(f"--specs={specs}", f"--generated={generated}"),
        *("--http-port=0", "--grpc-port=0", "--metrics-port=0"),
    ]
    environment = {**os.environ, CACHE_ENV: str(cache)}
    process = subprocess.Popen(
        command,
        cwd=root,
        env=environment,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        text = read_until_ready(process, 120)
        assert "car-price version 2: sha256 verified, signed by key " in text, text
        assert "ready in" in text, text
        http = re.search(r"HTTP     http://(127\.0\.0\.1:\d+)", text)
        assert http, text
        smoke = CliRunner().invoke(
            smoke_command,
            ["car-price", "--url", http.group(1), "--specs", str(specs), "--requests", "5"],
        )
        assert smoke.exit_code == 0, smoke.output
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, rest
