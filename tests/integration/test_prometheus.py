"""Analysis and autoscaling queries return numbers from a real Prometheus.

A real Triton (the local python-backend server, metrics on) serves the example
model; a real Prometheus on loopback scrapes it with the labels the cluster's
ServiceMonitor would add; the test sends inference load and evaluates every
query Kiln rendered for staging. Each must return one finite number, not an
empty result. Needs `prometheus` (Debian package), which `make test` installs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compiler.api import build
from compiler.serialize import to_yaml
from compiler.served import served_model
from runtime.local.backend_env import BackendEnvError, ensure_backend_env
from runtime.local.serve import TritonServer, assemble_local, choose_endpoints
from runtime.local.triton_dist import (
    DistributionError,
    PlatformError,
    check_platform,
    default_cache,
    ensure_triton,
)
from runtime.serving.sample_data import load_sample, take, to_inputs
from runtime.serving.smoke import connect
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
MODEL = "car-loan-default"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    try:
        check_platform()
        cache = default_cache()
        dist, backend = ensure_triton(cache), ensure_backend_env(cache)
    except PlatformError as exc:
        pytest.skip(f"this platform cannot run the bundled tritonserver: {exc}")
    except (DistributionError, BackendEnvError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Prometheus test, but Triton could not be set up: {exc}")
        pytest.skip(f"the local Triton could not be prepared: {exc}")
    folder = tmp_path_factory.mktemp("triton")
    local = served_model(ROOT / "specs", MODEL, "local", ROOT / "generated")
    assemble_local(local, folder / "repository")
    server = TritonServer(
        dist,
        backend,
        folder / "repository",
        [MODEL],
        choose_endpoints(),
        folder / "triton.log",
        # The cluster runs Triton with summaries on: the p99 query reads them.
        extra_args=["--metrics-config=summary_latencies=true"],
    )
    with server:
        server.start()
        server.wait_ready(timeout=60)
        yield server


@pytest.fixture(scope="module")
def prometheus(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require_tool("prometheus", "prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    metrics = urllib.parse.urlparse(triton.endpoints.metrics or "")
    target = f"{metrics.hostname}:{metrics.port}"
    # One job per Service, labelled as the Prometheus Operator labels ServiceMonitor targets.
    jobs = [
        {
            "job_name": service,
            "scrape_interval": "1s",
            "static_configs": [
                {"targets": [target], "labels": {"namespace": "ml-staging", "service": service}}
            ],
        }
        for service in (MODEL, f"{MODEL}-canary")
    ]
    (folder / "prometheus.yml").write_text(to_yaml({"scrape_configs": jobs}), encoding="utf-8")
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "prometheus.log").read_text()
                    pytest.fail(f"Prometheus did not become ready:\n{log[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder / "data", ignore_errors=True)


def _queries() -> dict[str, str]:
    result = build(ROOT / "specs")
    assert result.ok
    found = {}
    for artifact in result.artifacts:
        document = artifact.document
        if document is None or not artifact.path.startswith(f"staging/{MODEL}/"):
            continue
        if document["kind"] == "AnalysisTemplate":
            for metric in document["spec"]["metrics"]:
                if "prometheus" in metric["provider"]:
                    found[metric["name"]] = metric["provider"]["prometheus"]["query"]
        if document["kind"] == "ScaledObject":
            found["keda"] = document["spec"]["triggers"][0]["metadata"]["query"]
    return found


def _load(triton: TritonServer, seconds: float) -> int:
    local = served_model(ROOT / "specs", MODEL, "local", ROOT / "generated")
    _, frame = load_sample([t.name for t in local.signature.inputs])
    arrays = to_inputs(frame, local.signature.inputs, 64)
    client = connect(triton.endpoints.http, "http")
    sent = 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and sent < 2000:
            start = sent % 60
            client.infer(
                MODEL,
                "1",
                take(arrays, start, start + 4),
                [t.name for t in local.signature.outputs],
            )
            sent += 1
    finally:
        client.close()
    return sent


def _value(prometheus: str, query: str) -> tuple[int, float]:
    """(number of samples, value of the first) of an instant query."""
    answer = _get(f"{prometheus}/api/v1/query?query={urllib.parse.quote(query)}")
    assert answer["status"] == "success", answer
    samples = answer["data"]["result"]
    return len(samples), float(samples[0]["value"][1]) if samples else math.nan


def test_every_analysis_and_scaling_query_returns_a_number(
    triton: TritonServer, prometheus: str
) -> None:
    queries = _queries()
    assert {"error-rate", "latency-p99-ms", "keda"} <= set(queries)
    # Load, then wait for scrapes; a busy machine may need a few rounds before rate()
    # has two samples and Triton's p99 summary has observations in its window.
    deadline = time.monotonic() + 60
    while True:
        assert _load(triton, 3.0) > 20
        time.sleep(2)
        values = {name: _value(prometheus, query) for name, query in queries.items()}
        if values["latency-p99-ms"][1] > 0 or time.monotonic() > deadline:
            break
    for name, (count, value) in sorted(values.items()):
        assert count == 1, (name, queries[name], count)
        assert math.isfinite(value), (name, value)
    assert values["error-rate"][1] == 0.0
    assert 0 < values["latency-p99-ms"][1] < 1000, values
