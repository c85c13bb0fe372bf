"""The example platform's TorchScript model (car-price-torch) on the real local Triton
(tritonserver 2.51, python backend, CPU), run by the adapter with torch in the backend
venv that `kiln serve` builds for it: `kiln serve` and `kiln smoke` end to end, and
dynamic batches of concurrent requests answered as torch in process answers (up to
float32 rounding inside a batch, exactly alone, as smoke sends them).

Skips like tests/integration/test_triton_local.py: only where the platform cannot run the
binary or, outside CI, where the downloads fail. Needs the `torch` extra (`make setup`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from compiler.cli.serving import smoke as smoke_command
from compiler.served import model_ir, served_model
from compiler.targets import serving, triton
from runtime.contract.served import ServedModel
from runtime.local.backend_env import BackendEnvError, ensure_backend_env
from runtime.local.serve import TritonServer, assemble_local, choose_endpoints
from runtime.local.triton_dist import (
    DistributionError,
    PlatformError,
    check_platform,
    default_cache,
    ensure_triton,
)
from runtime.serving.references import reference_for
from runtime.serving.smoke import connect
from tests.tools import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning")]

SPECS = REPO_ROOT / "specs"
MODEL = "car-price-torch"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    """The model's local config compiled afresh (what the specs say today)."""
    ir, _ = model_ir(SPECS, MODEL, "local")
    generated = tmp_path_factory.mktemp("generated")
    path = generated / "local" / MODEL / "triton" / "config.pbtxt"
    path.parent.mkdir(parents=True)
    path.write_text(triton.serialize(triton.build_config(ir)), encoding="utf-8")
    return served_model(SPECS, MODEL, "local", generated)


@pytest.fixture(scope="module")
def server(local: ServedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    try:
        check_platform()
    except PlatformError as exc:
        pytest.skip(f"this platform cannot run the bundled tritonserver: {exc}")
    try:
        dist = ensure_triton(default_cache())
        backend = ensure_backend_env(default_cache(), torch=True)
    except (DistributionError, BackendEnvError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the local Triton tests, but a download failed: {exc}")
        pytest.skip(f"the local Triton could not be downloaded or prepared: {exc}")
    folder = tmp_path_factory.mktemp("triton")
    assemble_local(local, folder / "repository")
    server = TritonServer(
        dist, backend, folder / "repository", [MODEL], choose_endpoints(), folder / "log"
    )
    with server:
        server.start()
        server.wait_ready(timeout=120)
        yield server


def _rows(count: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    names = ("car_age", "km_driven", "price_new", "accident_count", "door_count")
    return {
        name: rng.uniform(
            1, 50_000 if name in ("km_driven", "price_new") else 10, (count, 1)
        ).astype(np.float32)
        for name in names
    }


def test_kiln_smoke_compares_the_served_answers_with_torch_exactly(server: TritonServer) -> None:
    result = CliRunner().invoke(
        smoke_command,
        [MODEL, "--url", server.endpoints.grpc, "--protocol", "grpc", "--requests", "10"],
    )
    assert result.exit_code == 0, result.output
    assert "price__0 equals the in-process reference (torch), exactly" in result.output
    assert "car_price_dataset() reference" in result.output


def test_concurrent_requests_are_batched_and_answered_as_torch_up_to_rounding(
    server: TritonServer, local: ServedModel
) -> None:
    ir, _ = model_ir(SPECS, MODEL, "local")
    reference = reference_for(
        "torchscript", Path(local.artifacts[0].uri), {}, True, serving.signature(ir)
    )
    requests = [_rows(n) for n in (1, 7, 3, 20, 1, 12, 5, 9)]

    def ask(arrays: dict[str, np.ndarray]) -> np.ndarray:
        client = connect(server.endpoints.http, "http")
        try:
            answer: np.ndarray = client.infer(MODEL, "1", arrays, ["price__0"])["price__0"]
            return answer
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, requests * 4))
    for arrays, answer in zip(requests * 4, answers, strict=True):
        want = reference.run(arrays, ["price__0"])["price__0"]
        assert answer.dtype == np.float32 and answer.shape == want.shape
        # A row's sums depend on the batch Triton put it in: float32 rounding of the
        # standardised answer, times the price's scale (measured: at most 5e-4 here).
        assert np.allclose(answer, want, rtol=1e-5, atol=1e-2)
    # Each request asked alone (as smoke's batches arrive) is answered as torch does.
    for arrays in requests:
        want = reference.run(arrays, ["price__0"])["price__0"]
        assert np.array_equal(ask(arrays), want)


def test_kiln_serve_runs_the_torch_model_until_sigterm() -> None:
    """The command end to end on the committed generated/: assemble, build (or reuse) the
    torch backend venv, start, announce, smoke, SIGTERM, clean stop."""
    command = [sys.executable, "-c", "from compiler.cli.serving import serve; serve()", MODEL]
    command += ["--http-port=0", "--grpc-port=0", "--no-metrics"]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 300  # a first run builds the venv (about 20 s here)
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C stops it."):
                break
        text = "".join(lines)
        http = re.search(r"HTTP     http://(127\.0\.0\.1:\d+)", text)
        assert "ready in" in text and http, text
        result = CliRunner().invoke(
            smoke_command, [MODEL, "--url", http.group(1), "--specs", str(SPECS)]
        )
        assert result.exit_code == 0, result.output
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, rest
    assert "stopped (exit code 0)" in rest
