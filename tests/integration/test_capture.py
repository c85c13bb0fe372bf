"""Traffic capture on the real local Triton (tritonserver 2.51, python backend, CPU).

N requests in, N rows out after a SIGTERM; the store down, every request still answered
and the drop counter counting the rows; the warm-up requests not captured. Same set-up
and skip rules as test_triton_local.py.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format

from compiler.served import model_ir, served_model
from compiler.targets import triton
from runtime.contract import capture as contract
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
from runtime.serving.sample_data import load_sample, to_inputs
from runtime.serving.smoke import reference_session, run_reference

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
MODEL = "car-loan-default"
TRITON_TYPES = {"fp32": "FP32", "int64": "INT64", "string": "BYTES"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parts() -> Iterator[tuple[object, object]]:
    try:
        check_platform()
        cache = default_cache()
        yield ensure_triton(cache), ensure_backend_env(cache)
    except PlatformError as exc:
        pytest.skip(f"this platform cannot run the bundled tritonserver: {exc}")
    except (DistributionError, BackendEnvError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the capture tests, but Triton could not be set up: {exc}")
        pytest.skip(f"the local Triton could not be prepared: {exc}")


def config_text(**capture: object) -> str:
    """The compiled local config.pbtxt, with capture settings changed as a test needs."""
    ir, _ = model_ir(SPECS, MODEL, "local")
    config = triton.build_config(ir)
    settings = json.loads(config.parameters[contract.PARAMETER].string_value)
    config.parameters[contract.PARAMETER].string_value = json.dumps({**settings, **capture})
    return text_format.MessageToString(config, as_utf8=True)


def served(tmp_path: Path, text: str) -> tuple[ServedModel, Path]:
    """The model as compiled, assembled with the config text given."""
    local = served_model(SPECS, MODEL, "local", ROOT / "generated")
    repository = tmp_path / "repository"
    assemble_local(local, repository, config_text=text)
    return local, repository


def start(parts: tuple[object, object], repository: Path, project: Path) -> TritonServer:
    dist, backend = parts
    server = TritonServer(
        dist,  # type: ignore[arg-type]
        backend,  # type: ignore[arg-type]
        repository,
        [MODEL],
        choose_endpoints(),
        project / "triton.log",
        project_root=project,
    )
    server.start()
    server.wait_ready(timeout=60)
    return server


def inputs(local: ServedModel, arrays: dict[str, np.ndarray], rows: slice) -> list[object]:
    result = []
    for tensor in local.signature.inputs:
        value = arrays[tensor.name][rows]
        entry = grpcclient.InferInput(tensor.name, list(value.shape), TRITON_TYPES[tensor.dtype])
        entry.set_data_from_numpy(value)
        result.append(entry)
    return result


def metric(server: TritonServer, name: str) -> float:
    assert server.endpoints.metrics is not None
    with urllib.request.urlopen(server.endpoints.metrics, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f'{name}{{model="{MODEL}",version="1"}}'):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not exported")


def captured(project: Path) -> pd.DataFrame:
    folder = project / ".kiln" / "data" / MODEL / contract.CAPTURED
    files = sorted(folder.rglob("*.parquet"))
    frames = [pd.read_parquet(f) for f in files if not f.name.startswith(".")]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@pytest.fixture(scope="module")
def sample() -> dict[str, np.ndarray]:
    ir, _ = model_ir(SPECS, MODEL, "local")
    _, frame = load_sample([t.name for t in ir.inputs])
    return to_inputs(frame, ir.inputs, 200)


def test_n_requests_in_n_rows_out_after_sigterm(
    parts: tuple[object, object], sample: dict[str, np.ndarray], tmp_path: Path
) -> None:
    # A long flush interval: nothing is written before the stop, so the rows on disk are
    # the ones the SIGTERM's clean stop flushed.
    local, repository = served(tmp_path, config_text(flush_seconds=600.0, flush_rows=10_000))
    server = start(parts, repository, tmp_path)
    sizes = [1, 3, 1, 8, 1, 2, 1, 1, 5, 1] * 4  # 40 requests, concurrent, some batched
    starts = np.cumsum([0, *sizes[:-1]])

    def ask(index: int) -> None:
        client = grpcclient.InferenceServerClient(server.endpoints.grpc)
        rows = slice(int(starts[index]), int(starts[index]) + sizes[index])
        headers = {contract.REQUEST_ID_HEADER: f"r{index}"} if index % 4 else None
        client.infer(MODEL, inputs(local, sample, rows), headers=headers)
        client.close()

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, range(len(sizes))))
        assert captured(tmp_path).empty
    finally:
        assert server.stop() == 0
    rows = captured(tmp_path)
    assert len(rows) == sum(sizes)  # the warm-up's 65 requests are not among them
    named = rows[rows[contract.REQUEST_ID].str.startswith("r")]
    assert len(named) == sum(s for i, s in enumerate(sizes) if i % 4)
    assert set(named[contract.REQUEST_ID]) >= {"r2", "r1#0", "r1#2", "r3#7"}
    assert rows[contract.REQUEST_ID].is_unique
    assert (rows[contract.MODEL_VERSION] == 1).all() and (rows["environment"] == "local").all()
    assert str(rows["timestamp"].dtype) == "datetime64[us, UTC]"
    # Each captured row is what onnxruntime in-process answers for its inputs.
    rows = rows.sort_values("car_value", kind="stable").reset_index(drop=True)
    feed = {t.name: _column(rows[t.name], t.dtype) for t in local.signature.inputs}
    expected = run_reference(
        reference_session(Path(local.artifacts[0].uri)), feed, ["label", "probabilities"]
    )
    assert np.array_equal(rows["y_pred"].to_numpy(), expected["label"])
    assert np.array_equal(rows["y_pred_proba"].to_numpy(), expected["probabilities"][:, 1])


def _column(values: pd.Series, dtype: str) -> np.ndarray:
    if dtype == "string":
        return values.to_numpy(dtype=object).reshape(-1, 1)
    return values.to_numpy(dtype="float32" if dtype == "fp32" else "int64").reshape(-1, 1)


def test_a_store_that_is_down_fails_no_request_and_counts_the_drops(
    parts: tuple[object, object], sample: dict[str, np.ndarray], tmp_path: Path
) -> None:
    local, repository = served(tmp_path, config_text(flush_seconds=0.2))
    (tmp_path / ".kiln").write_text("a file where the data store's folder should be")
    server = start(parts, repository, tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.endpoints.grpc)
        for index in range(20):
            answer = client.infer(MODEL, inputs(local, sample, slice(index, index + 2)))
            assert len(answer.as_numpy("label")) == 2
        client.close()
        dropped = 0.0
        for _ in range(50):  # the writer tries within flush_seconds
            dropped = metric(server, contract.DROPPED_METRIC)
            if dropped == 40:
                break
            time.sleep(0.1)
        assert dropped == 40
        assert metric(server, contract.WRITTEN_METRIC) == 0
    finally:
        server.stop()
