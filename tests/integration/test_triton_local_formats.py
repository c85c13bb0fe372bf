"""The real local Triton (tritonserver 2.51, python backend, CPU) serving a model of each
format it runs besides ONNX: the example platform's LightGBM model (car-price-gbm), the
formats golden tree's XGBoost classifier (default-xgb, FIL's predict_proba) and its
python model (default-python, run natively). `kiln smoke` compares the tree models'
answers with the library in process, exactly.

Skips like tests/integration/test_triton_local.py: only where the platform cannot run the
binary or, outside CI, where the downloads fail.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import treelite  # the dev extra: reads the model as Triton's FIL backend does

from compiler.served import model_ir, served_model
from compiler.targets import triton
from runtime.contract.served import ServedModel
from runtime.contract.signature import Tensor
from runtime.local.backend_env import BackendEnvError, ensure_backend_env
from runtime.local.serve import TritonServer, assemble_local, choose_endpoints
from runtime.local.triton_dist import (
    DistributionError,
    PlatformError,
    check_platform,
    default_cache,
    ensure_triton,
)
from runtime.serving.references import FIL_TOLERANCES, TreeReference, reference_for
from runtime.serving.smoke import connect, run, smoke
from runtime.serving.smoke import main as smoke_main
from tests.tools import REPO_ROOT

pytestmark = pytest.mark.slow

EXAMPLE = REPO_ROOT / "specs"
GOLDEN = REPO_ROOT / "tests" / "golden" / "formats" / "specs"
MODELS = {"car-price-gbm": EXAMPLE, "default-xgb": GOLDEN, "default-python": GOLDEN}


def _served(tmp: Path) -> dict[str, ServedModel]:
    """Each model's local config compiled afresh (what the specs say today)."""
    served = {}
    for name, specs in MODELS.items():
        ir, _ = model_ir(specs, name, "local")
        generated = tmp / specs.parent.name
        path = generated / "local" / name / "triton" / "config.pbtxt"
        path.parent.mkdir(parents=True)
        path.write_text(triton.serialize(triton.build_config(ir)), encoding="utf-8")
        served[name] = served_model(specs, name, "local", generated)
    return served


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServedModel]:
    return _served(tmp_path_factory.mktemp("generated"))


@pytest.fixture(scope="module")
def server(
    models: dict[str, ServedModel], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    try:
        check_platform()
    except PlatformError as exc:
        pytest.skip(f"this platform cannot run the bundled tritonserver: {exc}")
    try:
        dist, backend = ensure_triton(default_cache()), ensure_backend_env(default_cache())
    except (DistributionError, BackendEnvError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the local Triton tests, but a download failed: {exc}")
        pytest.skip(f"the local Triton could not be downloaded or prepared: {exc}")
    folder = tmp_path_factory.mktemp("triton")
    for local in models.values():
        assemble_local(local, folder / "repository")
    server = TritonServer(
        dist, backend, folder / "repository", list(MODELS), choose_endpoints(), folder / "log"
    )
    with server:
        server.start()
        server.wait_ready(timeout=90)
        yield server


def test_kiln_smoke_passes_for_the_example_lightgbm_model(
    server: TritonServer, models: dict[str, ServedModel]
) -> None:
    """What `kiln smoke car-price-gbm` runs: NannyML's car-price rows, read by the feature
    names in the model file, answered by Triton and by lightgbm in process."""
    local = models["car-price-gbm"]
    ir, _ = model_ir(EXAMPLE, "car-price-gbm", "local")
    lines: list[str] = []
    code = run(
        local.signature,
        local.artifacts,
        server.endpoints.http,
        latency_requests=20,
        out=lines.append,
        model_format="lightgbm",
        parameters=dict(ir.format.parameters),
        exact=True,
    )
    text = "\n".join(lines)
    assert code == 0, text
    assert "output__0 equals the in-process reference (lightgbm), exactly" in text
    assert "car_price_dataset() reference" in text


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_an_xgboost_classifier_answers_fils_probabilities_exactly(
    server: TritonServer, models: dict[str, ServedModel], protocol: str
) -> None:
    local = models["default-xgb"]
    ir, _ = model_ir(GOLDEN, "default-xgb", "local")
    reference = TreeReference(Path(local.artifacts[0].uri), dict(ir.format.parameters), True)
    rows = np.random.default_rng(1).normal(size=(300, 4)).astype(np.float32) * 50
    arrays = {"input__0": rows}
    url = server.endpoints.http if protocol == "http" else server.endpoints.grpc
    client = connect(url, protocol)
    try:
        report = smoke(client, local.signature, {1: reference}, arrays, latency_requests=5)
        # The comparison bites: a reference answering classes, not scores, is refused.
        wrong = TreeReference(
            Path(local.artifacts[0].uri),
            {**dict(ir.format.parameters), "predict_proba": "false", "threshold": "0.5"},
            True,
        )
        refused = smoke(client, local.signature, {1: wrong}, arrays, latency_requests=0)
    finally:
        client.close()
    assert report.ok, report.render()
    scores = reference.run(arrays, ["output__0"])["output__0"]
    assert scores.shape == (300, 2) and np.allclose(scores.sum(axis=1), 1.0)
    # The file was written by XGBoost 3: served as Treelite reads it for FIL in a cluster
    # (xgboost 2.1 alone misread its base_score, 0.053 off on every row).
    forest = treelite.frontend.load_xgboost_model(local.artifacts[0].uri)
    fil = treelite.gtil.predict(forest, rows, nthread=1).reshape(-1)
    assert np.abs(scores[:, 1] - fil).max() <= FIL_TOLERANCES["xgboost"].bound(fil)
    assert not refused.ok and "FAIL inference v1" in refused.render()


def test_a_python_model_runs_natively_in_the_python_backend(server: TritonServer) -> None:
    age = np.array([[30.0], [55.0], [70.0]], dtype=np.float32)
    income = np.array([[20000.0], [90000.0], [1000.0]], dtype=np.float32)
    client = connect(server.endpoints.http, "http")
    try:
        metadata = client.metadata("default-python", "1")
        answer = client.infer("default-python", "1", {"age": age, "income": income}, ["score"])
    finally:
        client.close()
    assert metadata["platform"] == "python"
    # The model's own code (tests/golden/formats/specs/artifacts/models/default-python).
    want = (1.0 / (1.0 + np.exp(-(0.02 * age - 0.00001 * income)))).astype(np.float32)
    assert np.array_equal(answer["score"], want)


def test_the_smoke_jobs_entry_point_takes_the_format_from_the_config(
    server: TritonServer,
    models: dict[str, ServedModel],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`python -m runtime.serving.smoke --config config.pbtxt`, as the rollout's Job runs it
    (here against the local adapter's config, so exactly)."""
    local = models["car-price-gbm"]
    signature = tmp_path / "signature.json"
    signature.write_text(json.dumps(local.signature.document()), encoding="utf-8")
    artifact = local.artifacts[0]
    argv = ["--url", f"http://{server.endpoints.http}", "--signature", str(signature)]
    argv += ["--artifact", f"1={artifact.uri}", "--sha256", f"1={artifact.sha256}"]
    argv += ["--config", str(local.config_path), "--latency-requests", "5", "--wait", "5"]
    assert smoke_main(argv) == 0
    # Without the config the model is taken for ONNX: a FAIL line, not a traceback.
    assert smoke_main([*argv[:-6], "--latency-requests", "5"]) == 1
    assert "FAIL setup: version 1: onnxruntime cannot open model.txt" in capsys.readouterr().out


def test_smoke_checks_a_python_models_answers_against_the_signature(
    server: TritonServer, models: dict[str, ServedModel]
) -> None:
    local = models["default-python"]
    rng = np.random.default_rng(2)
    arrays = {
        t.name: rng.uniform(0, 100, size=(40, 1)).astype(np.float32) for t in local.signature.inputs
    }
    reference = reference_for("python", Path(local.artifacts[0].uri), {}, exact=True)
    wrong = dataclasses.replace(local.signature, outputs=(Tensor("score", "fp64", (-1, 1)),))
    client = connect(server.endpoints.http, "http")
    try:
        report = smoke(client, local.signature, {1: reference}, arrays, latency_requests=3)
        refused = smoke(client, wrong, {1: reference}, arrays, latency_requests=0)
    finally:
        client.close()
    assert report.ok, report.render()
    assert "values not compared: the model is its own model.py" in report.render()
    assert "FAIL inference v1: output `score`: the server returned float32" in refused.render()
