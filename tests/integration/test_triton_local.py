"""A real Triton server (tritonserver 2.51 from the nvidia-pytriton wheel, python backend,
CPU) serving the locally compiled example models.

The first run downloads the wheel (55 MB) with pip and builds the backend venv
(numpy < 2, onnxruntime) into the user cache (or $KILN_TRITON_CACHE); later runs reuse them.
These tests skip only where the platform cannot run the binary (not Linux, glibc
< 2.35) or, outside CI, where the downloads fail; in CI (CI=true) a failed
download is a failure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from compiler.cli.serving import smoke as smoke_command
from compiler.served import model_ir, served_model
from compiler.targets import triton
from runtime.contract.served import ServedModel
from runtime.contract.signature import Signature, Tensor
from runtime.local.backend_env import BackendEnv, BackendEnvError, ensure_backend_env
from runtime.local.serve import (
    ServeError,
    TritonServer,
    assemble_local,
    choose_endpoints,
)
from runtime.local.triton_dist import (
    DistributionError,
    PlatformError,
    TritonDistribution,
    check_platform,
    default_cache,
    ensure_triton,
)
from runtime.serving.sample_data import load_sample, take, to_inputs
from runtime.serving.smoke import (
    SmokeReport,
    connect,
    reference_session,
    run_reference,
    smoke,
)

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
MODELS = ("car-loan-default", "car-price")

pytestmark = pytest.mark.slow


@dataclasses.dataclass
class Runtime:
    dist: TritonDistribution
    backend: BackendEnv
    generated: Path
    models: dict[str, ServedModel]


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    try:
        check_platform()
    except PlatformError as exc:
        pytest.skip(f"this platform cannot run the bundled tritonserver: {exc}")
    cache = default_cache()
    try:
        dist = ensure_triton(cache)
        backend = ensure_backend_env(cache)
    except (DistributionError, BackendEnvError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the local Triton tests, but a download failed: {exc}")
        pytest.skip(f"the local Triton could not be downloaded or prepared: {exc}")
    # Compile the models' Triton configs afresh, so that the test serves what the specs say
    # today (written where `kiln compile` puts them, in a folder of the test's own).
    generated = tmp_path_factory.mktemp("generated")
    for name in MODELS:
        ir, _ = model_ir(SPECS, name, "local")
        path = generated / "local" / name / "triton" / "config.pbtxt"
        path.parent.mkdir(parents=True)
        path.write_text(triton.serialize(triton.build_config(ir)), encoding="utf-8")
    models = {m: served_model(SPECS, m, "local", generated) for m in MODELS}
    return Runtime(dist, backend, generated, models)


def start(runtime: Runtime, repository: Path, models: list[str], log: Path) -> TritonServer:
    server = TritonServer(
        runtime.dist, runtime.backend, repository, models, choose_endpoints(), log
    )
    server.start()
    server.wait_ready(timeout=60)
    return server


@pytest.fixture(scope="session")
def server(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    folder = tmp_path_factory.mktemp("triton")
    for local in runtime.models.values():
        assemble_local(local, folder / "repository")
    with start(runtime, folder / "repository", list(MODELS), folder / "triton.log") as running:
        yield running


@pytest.fixture(scope="session")
def samples(runtime: Runtime) -> dict[str, dict[str, np.ndarray]]:
    result = {}
    for name, local in runtime.models.items():
        _, frame = load_sample([t.name for t in local.signature.inputs])
        result[name] = to_inputs(frame, local.signature.inputs, 500)
    return result


def references(local: ServedModel) -> dict[int, object]:
    return {a.version: reference_session(Path(a.uri)) for a in local.artifacts}


def run_smoke(
    server: TritonServer,
    local: ServedModel,
    arrays: dict[str, np.ndarray],
    protocol: str = "http",
    signature: Signature | None = None,
    latency: int = 20,
) -> SmokeReport:
    url = server.endpoints.http if protocol == "http" else server.endpoints.grpc
    client = connect(url, protocol, timeout=10)
    try:
        return smoke(
            client,
            signature or local.signature,
            references(local),  # type: ignore[arg-type]
            arrays,
            latency,
        )
    finally:
        client.close()


def test_triton_loads_the_locally_compiled_models(server: TritonServer, runtime: Runtime) -> None:
    assert server.running() and server.is_ready()
    assert server.ready_after_s is not None and server.ready_after_s < 60
    client = connect(server.endpoints.http, "http")
    try:
        for name in MODELS:
            assert client.metadata(name, "1")["platform"] == "python"
    finally:
        client.close()
    # The served config is the compiled one, byte for byte.
    for name in MODELS:
        served = (server.repository / name / "config.pbtxt").read_text(encoding="utf-8")
        assert served == runtime.models[name].config_text


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("model", MODELS)
def test_results_equal_onnxruntime_exactly(
    server: TritonServer,
    runtime: Runtime,
    samples: dict[str, dict[str, np.ndarray]],
    model: str,
    protocol: str,
) -> None:
    report = run_smoke(server, runtime.models[model], samples[model], protocol)
    assert report.ok, report.render()
    assert [c.name for c in report.checks] == [
        "readiness",
        "signature v1",
        "inference v1",
        "latency",
    ]
    assert report.latency_ms["p50"] < 1000


def test_concurrent_requests_are_batched_and_still_exact(
    server: TritonServer, runtime: Runtime, samples: dict[str, dict[str, np.ndarray]]
) -> None:
    """Concurrent clients make the dynamic batcher hand several requests to one execute();
    each must get exactly its own rows' results."""
    local = runtime.models["car-loan-default"]
    arrays = samples["car-loan-default"]
    names = [t.name for t in local.signature.outputs]
    session = reference_session(Path(local.artifacts[0].uri))
    problems: list[str] = []

    def work(worker: int) -> None:
        client = connect(server.endpoints.http, "http")
        try:
            for i in range(25):
                start = (worker * 25 + i) * 3 % 450
                part = take(arrays, start, start + 1 + (i % 4))
                got = client.infer(local.name, "1", part, names)
                want = run_reference(session, part, names)
                for name in names:
                    value = got[name]
                    if value is None or not np.array_equal(
                        value.reshape(want[name].shape), want[name]
                    ):
                        problems.append(f"worker {worker} request {i}: `{name}` differs")
        finally:
            client.close()

    import tritonclient.http as httpclient

    stats_client = httpclient.InferenceServerClient(server.endpoints.http)
    before = stats_client.get_inference_statistics(local.name, "1")["model_stats"][0]
    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    after = stats_client.get_inference_statistics(local.name, "1")["model_stats"][0]
    stats_client.close()
    assert problems == []
    requests = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert requests == sum(8 * [sum(1 + (i % 4) for i in range(25))])  # rows inferred
    assert executions < 200, "the dynamic batcher never grouped requests"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_request_for_one_output_gets_that_output(
    server: TritonServer,
    runtime: Runtime,
    samples: dict[str, dict[str, np.ndarray]],
    protocol: str,
) -> None:
    local = runtime.models["car-loan-default"]
    part = take(samples["car-loan-default"], 0, 10)
    url = server.endpoints.http if protocol == "http" else server.endpoints.grpc
    client = connect(url, protocol)
    try:
        got = client.infer(local.name, "1", part, ["probabilities"])
    finally:
        client.close()
    want = run_reference(reference_session(Path(local.artifacts[0].uri)), part, ["probabilities"])
    assert list(got) == ["probabilities"]
    assert got["probabilities"] is not None
    assert np.array_equal(got["probabilities"], want["probabilities"])


def renamed(tensors: tuple[Tensor, ...], old: str, new: str) -> tuple[Tensor, ...]:
    return tuple(dataclasses.replace(t, name=new) if t.name == old else t for t in tensors)


def test_a_renamed_input_in_the_spec_is_caught(
    server: TritonServer, runtime: Runtime, samples: dict[str, dict[str, np.ndarray]]
) -> None:
    local = runtime.models["car-loan-default"]
    wrong = dataclasses.replace(
        local.signature, inputs=renamed(local.signature.inputs, "car_value", "car_worth")
    )
    arrays = dict(samples["car-loan-default"])
    arrays["car_worth"] = arrays.pop("car_value")
    report = run_smoke(server, local, arrays, signature=wrong, latency=0)
    failed = [c.detail for c in report.checks if not c.ok]
    assert not report.ok
    assert failed[0].startswith("input `car_worth` of the spec is not served (the server has: ")
    assert "input `car_value` is served but not in the spec" in failed
    # Inference with the spec's names is refused by Triton, and the message says so.
    assert any("car_worth" in f and "inference on rows 0-63" in f for f in failed), failed


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_retyped_output_in_the_spec_is_caught(
    server: TritonServer,
    runtime: Runtime,
    samples: dict[str, dict[str, np.ndarray]],
    protocol: str,
) -> None:
    local = runtime.models["car-price"]
    outputs = (dataclasses.replace(local.signature.outputs[0], dtype="fp64"),)
    wrong = dataclasses.replace(local.signature, outputs=outputs)
    report = run_smoke(server, local, samples["car-price"], protocol, wrong, latency=0)
    failed = [c.detail for c in report.checks if not c.ok]
    assert failed == [
        "output `prediction`: the server has datatype FP32, the spec declares fp64 (FP64)",
        "output `prediction`: the server returned float32, the spec declares fp64",
    ]


def test_kiln_smoke_command(server: TritonServer) -> None:
    result = CliRunner().invoke(
        smoke_command,
        [
            "car-loan-default",
            "--url",
            server.endpoints.grpc,
            "--protocol",
            "grpc",
            "--specs",
            str(SPECS),
            "--rows",
            "100",
            "--requests",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ok   inference v1: 100 rows in batches of <= 64" in result.output
    assert result.output.rstrip().endswith("smoke: passed")


def test_the_cluster_entry_point_checks_a_signature_file(
    server: TritonServer, runtime: Runtime, tmp_path: Path
) -> None:
    """What a rollout analysis Job runs: signature.json from the ConfigMap, artifact by URI."""
    from runtime.serving.smoke import main as smoke_main

    local = runtime.models["car-loan-default"]
    signature = tmp_path / "signature.json"
    signature.write_text(json.dumps(local.signature.document()), encoding="utf-8")
    [artifact] = local.artifacts
    args = ["--url", server.endpoints.http, "--signature", str(signature), "--rows", "50"]
    args += ["--artifact", f"1={ROOT / artifact.uri}", "--sha256", f"1={artifact.sha256}"]
    assert smoke_main([*args, "--latency-requests", "5", "--wait", "5"]) == 0

    document = json.loads(signature.read_text(encoding="utf-8"))
    document["outputs"][1]["dtype"] = "fp64"
    signature.write_text(json.dumps(document), encoding="utf-8")
    assert smoke_main([*args, "--latency-requests", "5", "--wait", "5"]) == 1


def test_a_server_killed_mid_test_is_reported_not_hung_on(
    runtime: Runtime, samples: dict[str, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    local = runtime.models["car-price"]
    assemble_local(local, tmp_path / "repository")
    victim = start(runtime, tmp_path / "repository", ["car-price"], tmp_path / "triton.log")
    reports: list[SmokeReport] = []
    thread = threading.Thread(
        target=lambda: reports.append(
            run_smoke(victim, local, samples["car-price"], latency=1_000_000)
        )
    )
    try:
        thread.start()
        time.sleep(1.5)  # well into the latency loop
        assert victim.pid is not None
        os.killpg(victim.pid, signal.SIGKILL)
        started = time.monotonic()
        thread.join(timeout=30)
        assert not thread.is_alive(), "smoke hung on a dead server"
        assert time.monotonic() - started < 15
    finally:
        victim.stop()
    [report] = reports
    assert not report.ok
    failure = report.checks[-1]
    assert failure.name == "server" and not failure.ok
    assert re.match(r"latency request \d+/1000000 \(http 127\.0\.0\.1:\d+\): ", failure.detail)
    assert victim.process is not None and victim.process.returncode == -signal.SIGKILL


def test_a_model_that_fails_to_load_shows_the_server_log(runtime: Runtime, tmp_path: Path) -> None:
    local = runtime.models["car-loan-default"]
    broken = local.config_text.replace('name: "probabilities"', 'name: "probability"')
    assemble_local(local, tmp_path / "repository", config_text=broken)
    server = TritonServer(
        runtime.dist,
        runtime.backend,
        tmp_path / "repository",
        ["car-loan-default"],
        choose_endpoints(),
        tmp_path / "triton.log",
    )
    server.start()
    try:
        with pytest.raises(ServeError) as caught:
            server.wait_ready(timeout=60)
    finally:
        server.stop()
    message = str(caught.value)
    assert "before it was ready" in message or "was not ready" in message
    assert "config.pbtxt declares outputs ['probability'] that the model does not produce" in (
        message
    )


def test_a_port_in_use_is_refused() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match=f"port {port} on 127.0.0.1 is in use.*--grpc-port"):
            choose_endpoints(grpc_port=port)


def test_kiln_serve_runs_until_sigterm(runtime: Runtime) -> None:
    """The command end to end: assemble, start, announce, smoke, SIGTERM, clean stop."""
    command = [
        sys.executable,
        "-c",
        "from compiler.cli.serving import serve; serve()",
        "car-price",
        f"--specs={SPECS}",
        f"--generated={runtime.generated}",
        "--http-port=0",
        "--grpc-port=0",
        "--metrics-port=0",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C stops it."):
                break
        text = "".join(lines)
        assert "ready in" in text, text
        http = re.search(r"HTTP     http://(127\.0\.0\.1:\d+)", text)
        metrics = re.search(r"metrics  (http://127\.0\.0\.1:\d+/metrics)", text)
        assert http and metrics, text
        assert f"capture  {ROOT}/.kiln/data/car-price/captured/ (sample 1;" in text, text
        result = CliRunner().invoke(
            smoke_command,
            ["car-price", "--url", http.group(1), "--specs", str(SPECS), "--requests", "5"],
        )
        assert result.exit_code == 0, result.output
        import urllib.request

        with urllib.request.urlopen(metrics.group(1), timeout=10) as response:
            exposition = response.read().decode()
        assert 'nv_inference_request_success{model="car-price",version="1"}' in exposition
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, rest
    assert "SIGTERM: stopping Triton" in rest and "stopped (exit code 0)" in rest


# --- platform and environment checks (no server needed) ------------------------------------


@pytest.mark.parametrize(
    ("libc", "message"),
    [
        ("glibc 2.31", "needs glibc >= 2.35; this system has glibc 2.31"),
        ("musl 1.2.4", "is not glibc"),
    ],
)
def test_an_old_or_foreign_libc_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch, libc: str, message: str
) -> None:
    import runtime.local.triton_dist as dist

    monkeypatch.setattr(dist.platform, "system", lambda: "Linux")
    monkeypatch.setattr(dist.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(dist.os, "confstr", lambda name: libc)
    with pytest.raises(PlatformError, match=message):
        check_platform()
    monkeypatch.setattr(dist.platform, "system", lambda: "Darwin")
    with pytest.raises(PlatformError, match="needs Linux"):
        check_platform()


def test_a_given_wheel_that_is_missing_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KILN_TRITON_WHEEL", str(tmp_path / "nvidia_pytriton.whl"))
    try:
        check_platform()
    except PlatformError as exc:
        pytest.skip(f"this platform cannot run the bundled tritonserver: {exc}")
    with pytest.raises(DistributionError, match=r"KILN_TRITON_WHEEL=.* is not a file"):
        ensure_triton(tmp_path / "cache")


def test_the_stub_finds_the_backend_venv_first_on_path(tmp_path: Path) -> None:
    from runtime.local.backend_env import stub_environment

    env = stub_environment(BackendEnv(tmp_path / "venv"), {"PATH": "/usr/bin", "PYTHONPATH": "x"})
    assert env["PATH"] == f"{tmp_path / 'venv' / 'bin'}:/usr/bin"
    assert "PYTHONPATH" not in env
