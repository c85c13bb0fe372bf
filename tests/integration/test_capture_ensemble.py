"""The cluster's capture step in a real Triton ensemble (tritonserver 2.51, python
backend, CPU): the ensemble and the capture step exactly as a cluster environment
renders them, the model step the python-backend adapter on the same ONNX file
(tests/capture_ensemble.py). N requests in, N rows out after a SIGTERM, each equal to
onnxruntime in process; the store down, every request still answered and the drop
counter counting the rows; a sample of 0.5 keeping about half; request ids kept.
Same set-up and skip rules as test_capture.py.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient

from compiler.ir import ModelIR
from compiler.served import model_ir, served_model
from runtime.contract import capture as contract
from runtime.contract.served import ServedModel
from runtime.local.serve import TritonServer, choose_endpoints
from runtime.serving.sample_data import load_sample, to_inputs
from runtime.serving.smoke import reference_session, run_reference
from tests.capture_ensemble import capture_ensemble
from tests.integration.test_capture import parts  # noqa: F401 the fixture: Triton, its venv

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
MODEL = "car-loan-default"
TRITON_TYPES = {"fp32": "FP32", "int64": "INT64", "string": "BYTES"}
OUTPUTS = ["label", "probabilities"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model() -> tuple[ModelIR, ServedModel]:
    ir, _ = model_ir(SPECS, MODEL, "local")
    return ir, served_model(SPECS, MODEL, "local", ROOT / "generated")


@pytest.fixture(scope="module")
def sample(model: tuple[ModelIR, ServedModel]) -> dict[str, np.ndarray]:
    ir, _ = model
    _, frame = load_sample([t.name for t in ir.inputs])
    return to_inputs(frame, ir.inputs, 400)


def start(
    triton: tuple[object, object], model: tuple[ModelIR, ServedModel], tmp: Path, **settings: object
) -> TritonServer:
    """The capture ensemble, with capture settings changed as a test needs, served."""
    ir, local = model
    assert ir.capture is not None
    ir = dataclasses.replace(ir, capture=dataclasses.replace(ir.capture, **settings))
    libraries = tmp / "libraries"  # pyarrow comes from the backend venv here
    libraries.mkdir()
    capture_ensemble(ir, local.artifacts[0], tmp / "repository", libraries)
    dist, backend = triton
    server = TritonServer(
        dist,  # type: ignore[arg-type]
        backend,  # type: ignore[arg-type]
        tmp / "repository",
        [MODEL],
        choose_endpoints(),
        tmp / "triton.log",
        project_root=tmp,
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
    files = [f for f in sorted(folder.rglob("*.parquet")) if not f.name.startswith(".")]
    return (
        pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        if files
        else pd.DataFrame()
    )


def reference(local: ServedModel, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return run_reference(reference_session(Path(local.artifacts[0].uri)), feed, OUTPUTS)


def _column(values: pd.Series, dtype: str) -> np.ndarray:
    if dtype == "string":
        return values.to_numpy(dtype=object).reshape(-1, 1)
    return values.to_numpy(dtype="float32" if dtype == "fp32" else "int64").reshape(-1, 1)


def test_n_requests_in_n_rows_out_equal_to_onnxruntime(
    parts: tuple[object, object],  # noqa: F811
    model: tuple[ModelIR, ServedModel],
    sample: dict[str, np.ndarray],
    tmp_path: Path,
) -> None:
    _, local = model
    # A long flush interval: the rows on disk are the ones the SIGTERM's clean stop wrote.
    server = start(parts, model, tmp_path, flush_seconds=600.0, flush_rows=10_000)
    sizes = [1, 3, 1, 8, 1, 2, 1, 1, 5, 1] * 4  # 40 requests, concurrent, some batched
    starts = np.cumsum([0, *sizes[:-1]])

    def ask(index: int) -> None:
        client = grpcclient.InferenceServerClient(server.endpoints.grpc)
        rows = slice(int(starts[index]), int(starts[index]) + sizes[index])
        headers = {contract.REQUEST_ID_HEADER: f"r{index}"} if index % 4 else None
        answer = client.infer(MODEL, inputs(local, sample, rows), headers=headers)
        client.close()
        # The ensemble answers what the model answers in process, bit for bit.
        expected = reference(local, {k: v[rows] for k, v in sample.items()})
        # The shapes the model served alone answers on 2.51 (label: dims [1] over a
        # reshape, reported as [rows, 1]): the ensemble's outputs keep them.
        assert answer.as_numpy("label").shape == (sizes[index], 1)
        assert answer.as_numpy("probabilities").shape == (sizes[index], 2)
        for name in OUTPUTS:
            assert np.array_equal(
                answer.as_numpy(name).reshape(expected[name].shape), expected[name]
            )

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, range(len(sizes))))
        assert captured(tmp_path).empty
    finally:
        assert server.stop() == 0
    rows = captured(tmp_path)
    assert len(rows) == sum(sizes)
    named = rows[rows[contract.REQUEST_ID].str.startswith("r")]
    assert len(named) == sum(s for i, s in enumerate(sizes) if i % 4)
    assert set(named[contract.REQUEST_ID]) >= {"r2", "r1#0", "r1#2", "r3#7"}
    assert rows[contract.REQUEST_ID].is_unique
    assert (rows[contract.MODEL_VERSION] == 1).all() and (rows["environment"] == "local").all()
    rows = rows.sort_values("car_value", kind="stable").reset_index(drop=True)
    feed = {t.name: _column(rows[t.name], t.dtype) for t in local.signature.inputs}
    expected = reference(local, feed)
    assert np.array_equal(rows["y_pred"].to_numpy(), expected["label"])
    assert np.array_equal(rows["y_pred_proba"].to_numpy(), expected["probabilities"][:, 1])


def test_a_store_that_is_down_fails_no_request_and_counts_the_drops(
    parts: tuple[object, object],  # noqa: F811
    model: tuple[ModelIR, ServedModel],
    sample: dict[str, np.ndarray],
    tmp_path: Path,
) -> None:
    _, local = model
    (tmp_path / ".kiln").write_text("a file where the data store's folder should be")
    server = start(parts, model, tmp_path, flush_seconds=0.2)
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


def test_a_sample_keeps_about_that_share(
    parts: tuple[object, object],  # noqa: F811
    model: tuple[ModelIR, ServedModel],
    sample: dict[str, np.ndarray],
    tmp_path: Path,
) -> None:
    _, local = model
    server = start(parts, model, tmp_path, sample=0.5, flush_seconds=600.0)
    requests = 400
    try:
        client = grpcclient.InferenceServerClient(server.endpoints.grpc)
        for index in range(requests):
            headers = {contract.REQUEST_ID_HEADER: f"s{index}"}
            client.infer(MODEL, inputs(local, sample, slice(index, index + 1)), headers=headers)
        client.close()
    finally:
        assert server.stop() == 0
    rows = captured(tmp_path)
    # Binomial(400, 0.5): mean 200, sd 10; outside 150..250 (5 sd) about once in 1.7 million.
    assert 150 <= len(rows) <= 250
    # Whole requests are kept or not, each under the id its client sent.
    assert set(rows[contract.REQUEST_ID]) <= {f"s{i}" for i in range(requests)}
    assert rows[contract.REQUEST_ID].is_unique


def test_a_model_without_batching_is_captured_request_by_request(
    parts: tuple[object, object],  # noqa: F811
    model: tuple[ModelIR, ServedModel],
    sample: dict[str, np.ndarray],
    tmp_path: Path,
) -> None:
    """max_batch_size 0: no batch dimension in the configs; each request is one sample."""
    ir, local = model
    serving = dataclasses.replace(ir.serving, max_batch_size=0, dynamic_batching=None, warmup=None)
    unbatched = (dataclasses.replace(ir, serving=serving), local)
    server = start(parts, unbatched, tmp_path, flush_seconds=600.0)
    try:
        client = grpcclient.InferenceServerClient(server.endpoints.grpc)
        for index in range(12):
            headers = {contract.REQUEST_ID_HEADER: f"u{index}"}
            answer = client.infer(
                MODEL, inputs(local, sample, slice(index, index + 1)), headers=headers
            )
            expected = reference(local, {k: v[index : index + 1] for k, v in sample.items()})
            label = answer.as_numpy("label")
            assert np.array_equal(label.reshape(expected["label"].shape), expected["label"])
        client.close()
    finally:
        assert server.stop() == 0
    rows = captured(tmp_path).sort_values(
        contract.REQUEST_ID, key=lambda ids: ids.str[1:].astype(int)
    )
    assert list(rows[contract.REQUEST_ID]) == [f"u{i}" for i in range(12)]
    feed = {t.name: _column(rows[t.name], t.dtype) for t in local.signature.inputs}
    assert np.array_equal(rows["y_pred"].to_numpy(), reference(local, feed)["label"])
