"""Triton started with the restricted-API options the cluster's pods get
(`compiler/targets/serving.py: restricted_api_args`), on the real tritonserver 2.51:
the model repository, logging, trace and shared-memory APIs refuse a request without
the key, over HTTP and gRPC, while what the probes, the smoke test and clients use still
works. Kubernetes' `$(VAR)` expansion is done here as the kubelet does it, from the
container's env."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from compiler.targets.serving import ADMIN_HEADER, ADMIN_KEY_ENV, restricted_api_args
from runtime.local.serve import TritonServer, assemble_local, choose_endpoints
from tests.integration.test_triton_local import MODELS, Runtime, run_smoke, runtime, samples

__all__ = ["runtime", "samples"]  # fixtures this module uses from test_triton_local

pytestmark = pytest.mark.slow
KEY = "0b6cbb0e-3a45-4e6b-9d55-6c3f1a7e2d10"  # what the downward API gives: a pod uid


def expanded(args: list[str], env: dict[str, str]) -> list[str]:
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in args]


@pytest.fixture(scope="module")
def restricted(
    runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    folder = tmp_path_factory.mktemp("restricted")
    for local in runtime.models.values():
        assemble_local(local, folder / "repository")
    server = TritonServer(
        runtime.dist,
        runtime.backend,
        folder / "repository",
        list(MODELS),
        choose_endpoints(),
        folder / "triton.log",
        extra_args=expanded(restricted_api_args(), {ADMIN_KEY_ENV: KEY}),
    )
    server.start()
    with server as running:
        running.wait_ready(timeout=60)
        yield running


def status(url: str, headers: dict[str, str], method: str = "GET") -> int:
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            code: int = response.status
            return code
    except urllib.error.HTTPError as error:
        return error.code


RESTRICTED_HTTP = [
    ("POST", "/v2/repository/index"),
    ("POST", "/v2/repository/models/car-price/unload"),
    ("GET", "/v2/logging"),
    ("GET", "/v2/trace/setting"),
    ("GET", "/v2/systemsharedmemory/status"),
]


def test_http_refuses_the_restricted_apis_without_the_key(restricted: TritonServer) -> None:
    base = f"http://{restricted.endpoints.http}"
    for method, path in RESTRICTED_HTTP:
        assert status(base + path, {}, method) == 403, path
        assert status(base + path, {ADMIN_HEADER: "guess"}, method) == 403, path
    # With the key, Triton answers (index, logging); the open APIs need none.
    assert status(base + "/v2/repository/index", {ADMIN_HEADER: KEY}, "POST") == 200
    assert status(base + "/v2/logging", {ADMIN_HEADER: KEY}) == 200
    for path in ("/v2/health/ready", "/v2", "/v2/models/car-price", "/v2/models/stats"):
        assert status(base + path, {}) == 200, path


def test_grpc_refuses_them_too(restricted: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(restricted.endpoints.grpc)
    try:
        with pytest.raises(InferenceServerException, match="restricted"):
            client.get_log_settings()
        with pytest.raises(InferenceServerException, match="restricted"):
            client.get_model_repository_index()
        metadata = {f"triton-grpc-protocol-{ADMIN_HEADER}": KEY}
        assert client.get_log_settings(headers=metadata) is not None
        assert client.is_server_ready() and client.is_model_ready("car-price")
    finally:
        client.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_smoke_test_passes_under_the_restrictions(
    restricted: TritonServer,
    runtime: Runtime,
    samples: dict[str, dict[str, object]],
    protocol: str,
) -> None:
    for name, local in runtime.models.items():
        report = run_smoke(restricted, local, samples[name], protocol)  # type: ignore[arg-type]
        assert report.ok, report.render()


def test_the_server_log_shows_no_key(restricted: TritonServer) -> None:
    assert KEY not in restricted.log_path.read_text(encoding="utf-8", errors="replace")
