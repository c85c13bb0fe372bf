"""Tests for runtime/steps/publish.py: the store, the version entry, spec.patch, the GitHub PR."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fsspec
import pytest
from ruamel.yaml import YAML

from runtime.steps import publish
from runtime.steps.pipeline_io import StepError
from tests.tools import REPO_ROOT

SPEC = Path("specs/models/car-loan-default.yaml")
LOAN = REPO_ROOT / "specs/artifacts/models/car-loan-default/1/model.onnx"
PRICE = REPO_ROOT / "specs/artifacts/models/car-price/1/model.onnx"
LOAN_SHA = hashlib.sha256(LOAN.read_bytes()).hexdigest()
METRICS = {"roc_auc": 0.970443, "f1": 0.941891}
VALIDATION = {
    "latency": {"1": {"p50_ms": 0.1, "p99_ms": 0.2, "runs": 200}},
    "passed": True,
    "signature": {"matches": True, "mismatches": []},
    "slo_p99_ms": 50.0,
}
IMAGE = "ghcr.io/acme/kiln-runtime:0.1.0@sha256:" + "ab" * 32


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(METRICS))
    validation = tmp_path / "validation.json"
    validation.write_text(json.dumps(VALIDATION))
    return {"metrics": metrics, "validation": validation}


def argv(
    inputs: dict[str, Path], store: str | Path, out: Path, model: Path = LOAN, *extra: str
) -> list[str]:
    return [
        *("--model", str(model), "--store", str(store), "--name", "car-loan-default"),
        *("--version", "2", "--metrics", str(inputs["metrics"])),
        *("--validation", str(inputs["validation"]), "--data-sha256", "d" * 64, "--seed", "0"),
        *("--image", IMAGE, "--git-revision", "abc123", "--spec-digest", "e" * 64),
        *("--out", str(out), *extra),
    ]


def git_checkout(root: Path) -> Path:
    """A git repository holding a copy of the example spec; returns the copy's path."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    spec = root / SPEC
    spec.parent.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / SPEC, spec)
    return spec


# -------------------------------------------------------------------------- store


def test_uploads_artifact_and_reproducible_metadata(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    assert publish.main(argv(inputs, store, tmp_path / "out")) == 0
    folder = store / "car-loan-default" / "2"
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.onnx"]
    assert (folder / "model.onnx").read_bytes() == LOAN.read_bytes()
    text = (folder / "metadata.json").read_text()
    record = json.loads(text)
    assert text == json.dumps(record, sort_keys=True, indent=2) + "\n"
    assert record["artifact"] == {
        "sha256": LOAN_SHA,
        "size": LOAN.stat().st_size,
        "uri": "car-loan-default/2/model.onnx",
    }
    assert record["image_digest"] == "sha256:" + "ab" * 32
    assert record["metrics"] == METRICS
    assert record["validation"]["latency_p99_ms"] == {"1": 0.2}
    assert (record["seed"], record["git_revision"], record["version"]) == (0, "abc123", 2)
    assert (tmp_path / "out" / "sha256").read_text() == LOAN_SHA + "\n"
    assert (tmp_path / "out" / "metadata.json").read_text() == text


def test_republishing_the_same_artifact_is_a_no_op(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert publish.main(argv(inputs, store, tmp_path / "a")) == 0
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert publish.main(argv(inputs, store, tmp_path / "b")) == 0
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    assert "already holds this artifact" in capsys.readouterr().out
    for name in ("sha256", "metadata.json", "version.yaml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_different_artifact_is_never_overwritten(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert publish.main(argv(inputs, store, tmp_path / "a")) == 0
    assert publish.main(argv(inputs, store, tmp_path / "b", PRICE)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to overwrite ")
    assert LOAN_SHA in err and hashlib.sha256(PRICE.read_bytes()).hexdigest() in err
    assert (store / "car-loan-default/2/model.onnx").read_bytes() == LOAN.read_bytes()


def test_from_version_takes_the_first_free_slot(inputs: dict[str, Path], tmp_path: Path) -> None:
    """A scheduled retrain publishes again before its spec change merged: next slot."""
    store = tmp_path / "store"
    assert publish.main(argv(inputs, store, tmp_path / "a")) == 0
    later = [a if a != "2" else "from:2" for a in argv(inputs, store, tmp_path / "b", PRICE)]
    assert publish.main(later) == 0
    assert (store / "car-loan-default/2/model.onnx").read_bytes() == LOAN.read_bytes()
    assert (store / "car-loan-default/3/model.onnx").read_bytes() == PRICE.read_bytes()
    assert (tmp_path / "b" / "version.yaml").read_text().startswith("version: 3\n")
    again = [a if a != "2" else "from:2" for a in argv(inputs, store, tmp_path / "c")]
    assert publish.main(again) == 0  # the same bytes as version 2: no new version
    assert (tmp_path / "c" / "version.yaml").read_text().startswith("version: 2\n")
    assert not (store / "car-loan-default/4").exists()


def test_object_store_through_fsspec(inputs: dict[str, Path], tmp_path: Path) -> None:
    memory = fsspec.filesystem("memory")
    try:
        assert publish.main(argv(inputs, "memory://kiln-models", tmp_path / "out")) == 0
        stored = memory.cat_file("/kiln-models/car-loan-default/2/model.onnx")
        assert stored == LOAN.read_bytes()
        assert memory.exists("/kiln-models/car-loan-default/2/metadata.json")
        assert publish.main(argv(inputs, "memory://kiln-models", tmp_path / "b", PRICE)) == 1
    finally:
        memory.rm("/kiln-models", recursive=True)


# ------------------------------------------------------------------ version entry


def test_version_yaml_is_the_entry_to_add(inputs: dict[str, Path], tmp_path: Path) -> None:
    assert publish.main(argv(inputs, tmp_path / "store", tmp_path / "out")) == 0
    text = (tmp_path / "out" / "version.yaml").read_text()
    assert YAML(typ="safe").load(text) == {
        "version": 2,
        "artifact": {"uri": "car-loan-default/2/model.onnx", "sha256": LOAN_SHA},
        "metrics": {"f1": 0.941891, "roc_auc": 0.970443},
    }


def test_spec_patch_applies_with_git(inputs: dict[str, Path], tmp_path: Path) -> None:
    checkout = tmp_path / "repo"
    spec = git_checkout(checkout)
    original = spec.read_text()
    out = tmp_path / "out"
    assert publish.main(argv(inputs, tmp_path / "store", out, LOAN, "--spec", str(spec))) == 0
    patch = (out / "spec.patch").read_text()
    assert patch.startswith(f"--- a/{SPEC.as_posix()}\n+++ b/{SPEC.as_posix()}\n")
    git = ["git", "-C", str(checkout), "apply"]
    subprocess.run([*git, "--check", str(out / "spec.patch")], check=True)
    subprocess.run([*git, str(out / "spec.patch")], check=True)
    patched = spec.read_text()
    # Only lines were added, and the comments and flow mappings are all still there.
    added = [line[1:] for line in patch.splitlines() if line.startswith("+") and line[1:2] != "+"]
    assert patched.splitlines() == [
        *original.splitlines()[:29],
        *added,
        *original.splitlines()[29:],
    ]
    assert added[0] == "    - version: 2"
    versions = YAML(typ="safe").load(patched)["spec"]["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["artifact"]["sha256"] == LOAN_SHA


def test_record_keeps_the_gates_outcome_and_the_snapshot_time(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    """What `kiln promote` reads: whether the gates passed, and which data the run saw."""
    evaluation = tmp_path / "evaluation.json"
    gate = {"metric": "roc_auc", "kind": "min", "bound": 0.99, "passed": False}
    evaluation.write_text(json.dumps({"passed": False, "gates": [gate], "metrics": METRICS}))
    extra = ("--evaluation", str(evaluation), "--as-of", "2026-01-02T03:04:05+00:00")
    assert publish.main(argv(inputs, tmp_path / "store", tmp_path / "out", LOAN, *extra)) == 0
    record = json.loads((tmp_path / "store/car-loan-default/2/metadata.json").read_text())
    assert record["gates"] == {"passed": False, "results": [gate]}
    assert record["as_of"] == "2026-01-02T03:04:05+00:00"
    # Without the files (a hand-run publish), the record says it does not know.
    assert publish.main(argv(inputs, tmp_path / "bare", tmp_path / "out2")) == 0
    bare = json.loads((tmp_path / "bare/car-loan-default/2/metadata.json").read_text())
    assert bare["gates"] is None and bare["as_of"] is None


# ------------------------------------------------------------------------ GitHub


class FakeGitHub(BaseHTTPRequestHandler):
    """Just enough of GitHub's REST API for a pull request; records every request."""

    requests: list[dict[str, Any]]
    spec_text: str
    fail_refs: bool

    def log_message(self, *args: Any) -> None:  # keep pytest's output clean
        pass

    def _reply(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "body": body,
                "auth": self.headers.get("Authorization"),
            }
        )
        route = (self.command, self.path.split("?")[0].removeprefix("/repos/acme/ml"))
        contents = f"/contents/{SPEC.as_posix()}"
        replies: dict[tuple[str, str], tuple[int, Any]] = {
            ("GET", ""): (200, {"default_branch": "main"}),
            ("GET", "/git/ref/heads/main"): (200, {"object": {"sha": "base-sha"}}),
            ("POST", "/git/refs"): (
                (422, {"message": "Reference already exists"})
                if self.fail_refs
                else (201, {"ref": "refs/heads/x"})
            ),
            ("GET", contents): (
                200,
                {
                    "sha": "blob-sha",
                    "content": base64.encodebytes(self.spec_text.encode()).decode(),
                },
            ),
            ("PUT", contents): (200, {"commit": {"sha": "new-sha"}}),
            ("POST", "/pulls"): (201, {"number": 7, "html_url": "https://example.test/pull/7"}),
        }
        self._reply(*replies.get(route, (404, {"message": "Not Found"})))

    do_GET = do_POST = do_PUT = _handle


@pytest.fixture()
def github() -> Iterator[tuple[str, type[FakeGitHub]]]:
    handler = type(
        "Handler",
        (FakeGitHub,),
        {"requests": [], "spec_text": (REPO_ROOT / SPEC).read_text(), "fail_refs": False},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def pr_argv(inputs: dict[str, Path], tmp_path: Path, api: str) -> list[str]:
    spec = git_checkout(tmp_path / "repo")
    extra = ["--spec", str(spec), "--open-pr", "--github-repo", "acme/ml"]
    extra += ["--token-env", "KILN_TEST_TOKEN", "--github-api", api]
    return argv(inputs, tmp_path / "store", tmp_path / "out", LOAN, *extra)


def test_pull_request_request_sequence(
    inputs: dict[str, Path],
    tmp_path: Path,
    github: tuple[str, type[FakeGitHub]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, handler = github
    monkeypatch.setenv("KILN_TEST_TOKEN", "t0ken")
    assert publish.main(pr_argv(inputs, tmp_path, api)) == 0
    branch = "kiln/car-loan-default-v2"
    calls = [(r["method"], r["path"]) for r in handler.requests]
    assert calls == [
        ("GET", "/repos/acme/ml"),
        ("GET", "/repos/acme/ml/git/ref/heads/main"),
        ("POST", "/repos/acme/ml/git/refs"),
        ("GET", f"/repos/acme/ml/contents/{SPEC.as_posix()}?ref=kiln%2Fcar-loan-default-v2"),
        ("PUT", f"/repos/acme/ml/contents/{SPEC.as_posix()}"),
        ("POST", "/repos/acme/ml/pulls"),
    ]
    assert all(r["auth"] == "Bearer t0ken" for r in handler.requests)
    assert handler.requests[2]["body"] == {"ref": f"refs/heads/{branch}", "sha": "base-sha"}
    put = handler.requests[4]["body"]
    assert (put["sha"], put["branch"]) == ("blob-sha", branch)
    # The committed file is the spec with the entry appended: what spec.patch does locally.
    patched = base64.b64decode(put["content"]).decode()
    subprocess.run(["git", "-C", str(tmp_path / "repo"), "apply", str(tmp_path / "out/spec.patch")])
    assert patched == (tmp_path / "repo" / SPEC).read_text()
    pull = handler.requests[5]["body"]
    assert (pull["head"], pull["base"]) == (branch, "main")
    assert json.loads((tmp_path / "out" / "pull_request.json").read_text()) == {
        "branch": branch,
        "number": 7,
        "url": "https://example.test/pull/7",
    }


def test_pull_request_errors(
    inputs: dict[str, Path],
    tmp_path: Path,
    github: tuple[str, type[FakeGitHub]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api, handler = github
    monkeypatch.delenv("KILN_TEST_TOKEN", raising=False)
    assert publish.main(pr_argv(inputs, tmp_path / "a", api)) == 1
    assert "needs a GitHub token in $KILN_TEST_TOKEN" in capsys.readouterr().err
    assert handler.requests == []
    monkeypatch.setenv("KILN_TEST_TOKEN", "t0ken")
    handler.fail_refs = True
    assert publish.main(pr_argv(inputs, tmp_path / "b", api)) == 1
    err = capsys.readouterr().err
    assert "/repos/acme/ml/git/refs failed: 422" in err and "Reference already exists" in err
    assert "t0ken" not in err


def test_module_entry_point(inputs: dict[str, Path], tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.steps.publish",
            *argv(inputs, tmp_path, tmp_path / "o")[:-2],
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2  # argparse: --out is required
    assert "--out" in completed.stderr


def test_the_token_goes_over_https_only_and_never_through_a_redirect() -> None:
    with pytest.raises(StepError, match="not https"):
        publish.GitHub("http://api.github.example", "acme/ml", "ghp_secret")
    seen: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(str(self.headers.get("Authorization")))
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/x")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = publish.GitHub(
            f"http://127.0.0.1:{server.server_address[1]}", "acme/ml", "ghp_secret"
        )
        with pytest.raises(StepError, match="302"):
            api.call("GET", "/pulls")
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["Bearer ghp_secret"]  # asked once; the redirect was not followed
