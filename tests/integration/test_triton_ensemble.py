"""The example ensemble (car-price-pipeline: a python step, then an ONNX step through the
adapter) on the real local Triton: Triton's ensemble scheduler runs the steps, and the
answers equal the pipeline computed in process, exactly.

Skips like test_triton_local.py where the platform cannot run tritonserver, or outside
CI where its download fails.
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from compiler.cli.serving import smoke as smoke_command
from compiler.served import ensemble_parts, model_ir, served_model
from compiler.targets import capture, ensemble, promql, triton
from runtime.contract.served import ArtifactSource, ServedModel
from runtime.local.backend_env import BackendEnvError, ensure_backend_env
from runtime.local.serve import TritonServer, choose_endpoints, prepare_server
from runtime.local.triton_dist import (
    DistributionError,
    PlatformError,
    check_platform,
    default_cache,
    ensure_triton,
)
from runtime.serving.ensemble_reference import ensemble_reference
from runtime.serving.sample_data import load_sample, to_inputs
from runtime.serving.smoke import SmokeReport, connect, smoke
from runtime.serving.smoke import main as smoke_main

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
MODEL = "car-price-pipeline"

pytestmark = pytest.mark.slow


@dataclasses.dataclass
class Runtime:
    model: ServedModel  # as `kiln serve` takes it; tritonserver and its venv are cached


def _compile(generated: Path) -> None:
    """The ensemble's configs as `kiln compile` writes them, from the specs of today."""
    ir, _ = model_ir(SPECS, MODEL, "local")
    assert ir.ensemble is not None
    folder = generated / "local" / MODEL / "triton"
    folder.mkdir(parents=True)
    (folder / triton.CONFIG_FILE).write_text(triton.serialize(capture.ensemble_config(ir)))
    for step in ir.ensemble.steps:
        path = folder / ensemble.STEPS_FOLDER / step.name / triton.CONFIG_FILE
        path.parent.mkdir(parents=True)
        path.write_text(triton.serialize(ensemble.step_config(ir, step)))
    if capture.has_capture_step(ir):  # on by default locally: the capture step comes last
        recorder = capture.capture_step_config(ir)
        path = folder / ensemble.STEPS_FOLDER / recorder.name / triton.CONFIG_FILE
        path.parent.mkdir(parents=True)
        path.write_text(triton.serialize(recorder))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    try:
        check_platform()
    except PlatformError as exc:
        pytest.skip(f"this platform cannot run the bundled tritonserver: {exc}")
    cache = default_cache()
    try:
        ensure_triton(cache)
        ensure_backend_env(cache)
    except (DistributionError, BackendEnvError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the local Triton tests, but a download failed: {exc}")
        pytest.skip(f"the local Triton could not be downloaded or prepared: {exc}")
    generated = tmp_path_factory.mktemp("generated")
    _compile(generated)
    served = served_model(SPECS, MODEL, "local", generated)
    # The capture step (on by default locally) writes under the project root's .kiln/data:
    # a folder of the test's, not the repository's.
    return Runtime(dataclasses.replace(served, root=tmp_path_factory.mktemp("project")))


@pytest.fixture(scope="module")
def server(runtime: Runtime) -> Iterator[TritonServer]:
    # What `kiln serve` runs: the repository assembled, tritonserver and its venv ready.
    with prepare_server(runtime.model, choose_endpoints()) as running:
        running.start()
        running.wait_ready(timeout=60)
        yield running


@pytest.fixture(scope="module")
def sample(runtime: Runtime) -> dict[str, np.ndarray]:
    _, frame = load_sample([t.name for t in runtime.model.signature.inputs])
    return to_inputs(frame, runtime.model.signature.inputs, 300)


def _smoke(
    server: TritonServer,
    runtime: Runtime,
    reference: object,
    arrays: dict[str, np.ndarray],
    protocol: str = "http",
) -> SmokeReport:
    url = server.endpoints.http if protocol == "http" else server.endpoints.grpc
    client = connect(url, protocol, timeout=10)
    try:
        return smoke(client, runtime.model.signature, {1: reference}, arrays, 10)  # type: ignore[dict-item]
    finally:
        client.close()


def test_triton_serves_the_ensemble_and_its_steps(server: TritonServer) -> None:
    client = connect(server.endpoints.http, "http")
    try:
        assert client.metadata(MODEL, "1")["platform"] == "ensemble"
        # Loading the ensemble loaded its steps: the python step and the adapter's ONNX step.
        for step in ("prep", "regressor"):
            assert client.model_ready(f"{MODEL}.{step}", "1")
            assert client.metadata(f"{MODEL}.{step}", "1")["platform"] == "python"
    finally:
        client.close()
    assert (server.repository / f"{MODEL}.regressor" / "1" / "model.onnx").is_file()
    # The python step is the user's model.py itself, not the ONNX adapter.
    step_file = server.repository / f"{MODEL}.prep" / "1" / "model.py"
    assert "def compute(" in step_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_answers_equal_the_pipeline_in_process(
    server: TritonServer, runtime: Runtime, sample: dict[str, np.ndarray], protocol: str
) -> None:
    ir, root = model_ir(SPECS, MODEL, "local")
    reference = ensemble_reference(*ensemble_parts(ir, root))
    report = _smoke(server, runtime, reference, sample, protocol)
    assert report.ok, report.render()
    assert [c.name for c in report.checks] == [
        "readiness",
        "signature v1",
        "inference v1",
        "latency",
    ]
    inference = report.checks[2].detail
    assert inference.endswith("equals the in-process reference (the ensemble's steps), exactly")


def test_a_different_preprocessing_in_process_is_caught(
    server: TritonServer, runtime: Runtime, sample: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """The comparison is real: a python step that computes otherwise fails the smoke."""
    ir, root = model_ir(SPECS, MODEL, "local")
    config_text, steps = ensemble_parts(ir, root)
    prep = next(s for s in steps if not s.onnx)
    changed = tmp_path / "model.py"
    text = Path(prep.artifact.uri).read_text(encoding="utf-8")
    changed.write_text(text.replace("MIN_AGE_YEARS = 0.5", "MIN_AGE_YEARS = 5.0"))
    tampered = dataclasses.replace(prep, artifact=ArtifactSource(1, str(changed)))
    reference = ensemble_reference(config_text, [tampered if s is prep else s for s in steps])
    report = _smoke(server, runtime, reference, sample)
    assert not report.ok
    assert "output `prediction` differs" in report.render()


def test_kiln_smoke_command_on_the_ensemble(server: TritonServer) -> None:
    result = CliRunner().invoke(
        smoke_command,
        [
            MODEL,
            "--url",
            server.endpoints.http,
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


def _staging_manifest(name: str) -> dict[str, Any]:
    folder = ROOT / "generated" / "staging" / MODEL
    document: dict[str, Any] = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
    return document


def test_the_rendered_cluster_smoke_job_passes_on_the_served_ensemble(
    server: TritonServer, tmp_path: Path
) -> None:
    """The staging AnalysisTemplate's smoke command, run against this Triton: its config
    mount from the staging ConfigMap, the store's URIs pointed at the example's files."""
    for key, text in _staging_manifest(f"configmap-{MODEL}-triton-config.yaml")["data"].items():
        (tmp_path / key).write_text(text, encoding="utf-8")
    template = _staging_manifest(f"analysistemplate-{MODEL}-analysis.yaml")
    smoke_metric = next(m for m in template["spec"]["metrics"] if m["name"] == "smoke-test")
    job = smoke_metric["provider"]["job"]["spec"]["template"]["spec"]
    command = job["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "runtime.serving.smoke"]
    models = f"{ROOT / 'specs' / 'artifacts' / 'models'}/"
    args = [
        a.replace("/etc/kiln/triton", str(tmp_path)).replace("s3://acme-models/", models)
        for a in command[3:]
    ]
    args[args.index("--url") + 1] = server.endpoints.http
    assert smoke_main([*args, "--rows", "64", "--latency-requests", "10"]) == 0


def test_triton_reports_the_ensemble_under_its_own_name(
    server: TritonServer, runtime: Runtime
) -> None:
    """What the rendered PromQL selects (model="<m>") is a series Triton reports: the
    ensemble's client requests under its name, each step's internal ones under the step's."""
    client = connect(server.endpoints.http, "http")
    try:
        arrays = {t.name: np.ones((1, 1), np.float32) for t in runtime.model.signature.inputs}
        for _ in range(3):
            client.infer(MODEL, "1", arrays, ["prediction"])
    finally:
        client.close()
    endpoints = server.endpoints
    url = f"http://{endpoints.host}:{endpoints.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    success = {
        labels: float(value)
        for labels, value in re.findall(r"^nv_inference_request_success\{(.*)\} (\S+)$", text, re.M)
    }
    by_model = {re.search(r'model="([^"]+)"', k).group(1): v for k, v in success.items()}  # type: ignore[union-attr]
    # The local environment captures by default: the capture step is the last step.
    steps = {f"{MODEL}.prep", f"{MODEL}.regressor", f"{MODEL}.capture"}
    assert set(by_model) == {MODEL, *steps}
    assert by_model[MODEL] >= 3
    # Every ensemble request ran each step once.
    assert {by_model[step] for step in steps} == {by_model[MODEL]}
    ir, _ = model_ir(SPECS, MODEL, "local")
    assert f'model="{MODEL}"' in promql.error_rate(ir, MODEL)
