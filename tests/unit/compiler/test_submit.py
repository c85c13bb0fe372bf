"""`kiln submit`: the request it sends to the Argo Server API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from compiler.cli import cli
from tests.tools import REPO_ROOT

ROOT = REPO_ROOT


class _Recorder(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        answer = {"metadata": {"name": "car-loan-default-training-abc12"}}
        if type(self).status != 200:
            answer = {"code": 7, "message": "permission denied"}
        self.wfile.write(json.dumps(answer).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Recorder.requests = []
    _Recorder.status = 200
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_submit_posts_the_template_run(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(
        cli,
        ["submit", "car-loan-default", "--env", "staging", "--server", server, "-p", "seed=7"],
        env={"ARGO_TOKEN": "s3cret"},
    )
    assert result.exit_code == 0, result.output
    assert (
        "submitted workflow car-loan-default-training-abc12 in namespace ml-staging"
        in result.output
    )
    [request] = _Recorder.requests
    assert request["path"] == "/api/v1/workflows/ml-staging/submit"
    assert request["auth"] == "Bearer s3cret"
    assert request["body"] == {
        "namespace": "ml-staging",
        "resourceKind": "WorkflowTemplate",
        "resourceName": "car-loan-default-training",
        "submitOptions": {
            "generateName": "car-loan-default-training-",
            "labels": "app.kubernetes.io/name=car-loan-default,kiln.dev/submitted-by=kiln",
            "parameters": ["seed=7"],
        },
    }


def test_submit_reports_a_refusal(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    _Recorder.status = 403
    result = CliRunner().invoke(
        cli, ["submit", "car-loan-default", "--env", "staging", "--server", server]
    )
    assert result.exit_code == 1
    assert "Argo Server answered 403" in result.output


def test_submit_refuses_the_local_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(
        cli, ["submit", "car-loan-default", "--env", "local", "--server", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2
    assert "kiln run --local" in result.output


def test_submit_reports_an_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(
        cli, ["submit", "car-loan-default", "--env", "staging", "--server", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 1
    assert "cannot reach the Argo Server" in result.output
