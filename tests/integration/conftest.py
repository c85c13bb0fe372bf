"""A real Triton serving the example model and a real Prometheus scraping it.

Triton is the local python-backend server with summary latencies on, as the
cluster runs it; Prometheus scrapes it every second, once per Service, with the
labels the Prometheus Operator adds to ServiceMonitor targets (`namespace`,
`service`), for the stable and the canary Service of `ml-staging`. Module-scoped:
each test module gets its own pair. Needs `prometheus` (Debian package), which
`make test` installs.
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
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
MODEL = "car-loan-default"
NAMESPACE = "ml-staging"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get_json(url: str) -> Any:
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
                {"targets": [target], "labels": {"namespace": NAMESPACE, "service": service}}
            ],
        }
        for service in (MODEL, f"{MODEL}-canary")
    ]
    (folder / "prometheus.yml").write_text(to_yaml({"scrape_configs": jobs}), encoding="utf-8")
    port = free_port()
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


def instant(prometheus: str, query: str) -> list[dict[str, Any]]:
    """The samples of an instant query (`data.result`)."""
    answer = get_json(f"{prometheus}/api/v1/query?query={urllib.parse.quote(query)}")
    assert answer["status"] == "success", answer
    samples: list[dict[str, Any]] = answer["data"]["result"]
    return samples


def first_value(samples: list[dict[str, Any]]) -> float:
    return float(samples[0]["value"][1]) if samples else math.nan
