"""The local model repository of an ensemble (runtime/local/ensemble.py), assembled from
the example platform's car-price-pipeline as `kiln serve` takes it, and a tampered step
refused by the real `kiln serve` command before Triton is prepared or started."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from compiler.cli import cli
from compiler.served import served_model
from runtime.local import serve as local_serve
from runtime.local.ensemble import assemble_ensemble
from runtime.local.serve import ADAPTER, ADAPTER_FILES
from runtime.serving.capture_step import step_files
from tests.tools import REPO_ROOT

MODEL = "car-price-pipeline"
PREP = Path("specs/artifacts/models/car-price-pipeline/prep/model.py")


def test_each_step_and_the_ensemble_get_the_folders_triton_loads(tmp_path: Path) -> None:
    served = served_model(REPO_ROOT / "specs", MODEL, "local", REPO_ROOT / "generated")
    repository = tmp_path / "repository"
    lines = assemble_ensemble(served, repository, ADAPTER_FILES)
    assert lines == [
        f"step {MODEL}.prep version 1: sha256 verified, NOT signed",
        f"step {MODEL}.regressor version 1: sha256 verified, NOT signed",
        f"step {MODEL}.capture version 1: installed from the runtime image",
    ]
    assert sorted(p.name for p in repository.iterdir()) == [
        MODEL,
        f"{MODEL}.capture",
        f"{MODEL}.prep",
        f"{MODEL}.regressor",
    ]
    # The ensemble: its compiled config and an empty version folder.
    ensemble = repository / MODEL
    assert (ensemble / "config.pbtxt").read_text(encoding="utf-8") == served.config_text
    assert list((ensemble / "1").iterdir()) == []
    config = mc.ModelConfig()
    text_format.Parse((ensemble / "config.pbtxt").read_text(encoding="utf-8"), config)
    assert config.platform == "ensemble"
    # A python step is the user's model.py; an ONNX step has the adapter (and the files it
    # imports) beside model.onnx.
    prep = repository / f"{MODEL}.prep" / "1"
    assert sorted(p.name for p in prep.iterdir()) == ["model.py"]
    assert (prep / "model.py").read_bytes() == (REPO_ROOT / PREP).read_bytes()
    regressor = repository / f"{MODEL}.regressor" / "1"
    given = sorted(["model.onnx", *(f.name for f in ADAPTER_FILES)])
    assert sorted(p.name for p in regressor.iterdir()) == given
    assert (regressor / "model.py").read_bytes() == ADAPTER.read_bytes()
    # The capture step (on by default locally): its modules, and no libraries/, since the
    # local backend venv has pyarrow; its config the compiled one.
    recorder = repository / f"{MODEL}.capture"
    assert sorted(p.name for p in (recorder / "1").iterdir()) == sorted(
        f.name for f in step_files()
    )
    assert served.capture_step is not None
    assert (recorder / "config.pbtxt").read_text() == served.capture_step.config_text


def test_a_tampered_step_is_refused_before_triton(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "platform"
    shutil.copytree(REPO_ROOT / "specs", root / "specs")
    shutil.copytree(REPO_ROOT / "generated", root / "generated")
    step = root / PREP
    step.write_text(step.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    calls: list[str] = []
    monkeypatch.setattr(local_serve, "prepare_runtime", lambda cache: calls.append("prepare"))
    result = CliRunner().invoke(
        cli,
        ["serve", MODEL, "--specs", str(root / "specs"), "--generated", str(root / "generated")],
    )
    assert result.exit_code != 0
    assert calls == []
    # Resolution reads the step's file first: the compile-time digest check refuses it.
    assert "car-price-pipeline.yaml:30: " in result.output
    assert "prep/model.py has sha256 " in result.output


def test_kiln_serve_says_where_an_ensemble_captures() -> None:
    # The settings are the capture step's (the ensemble's own config has none).
    served = served_model(REPO_ROOT / "specs", MODEL, "local", REPO_ROOT / "generated")
    line = local_serve._capture_line(served)
    assert line.startswith(f"{REPO_ROOT}/.kiln/data/{MODEL}/captured/ (sample 1;")


class _FakeServer:
    """Stands in for TritonServer: started and ready at once, and records its stops."""

    def __init__(self) -> None:
        self.stops = 0
        self.endpoints = local_serve.Endpoints("127.0.0.1", 1, 2, None)

    def start(self) -> None:
        pass

    def wait_ready(self, timeout: float) -> float:
        return 0.1

    def stop(self, timeout: float = 1.0) -> int:
        self.stops += 1
        return 0


def test_a_failure_after_triton_started_still_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    served = served_model(REPO_ROOT / "specs", MODEL, "local", REPO_ROOT / "generated")
    server = _FakeServer()
    monkeypatch.setattr(local_serve, "prepare_server", lambda local, endpoints: server)
    monkeypatch.setattr(local_serve, "choose_endpoints", lambda *args: server.endpoints)

    def broken(*args: object) -> None:
        raise RuntimeError("announcement failed")

    monkeypatch.setattr(local_serve, "_announce", broken)
    with pytest.raises(RuntimeError, match="announcement failed"):
        local_serve.serve(served)
    assert server.stops == 1
