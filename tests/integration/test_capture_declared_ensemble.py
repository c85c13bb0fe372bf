"""A declared ensemble captured on the real local Triton (tritonserver 2.51, python
backend, CPU), as `kiln serve car-price-pipeline` runs it: the committed configs of
generated/local (the user's steps, then the capture step), assembled by `prepare_server`.
N requests in, N requests' rows out after a SIGTERM: the raw inputs as sent and the
prediction equal to what the ensemble answered; the answers those of the pipeline
computed in process (the smoke reference, whose capture step passes the answer on); and
the monitor job reads the captured folder as its analysis data.
Same set-up and skip rules as test_capture.py.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient

from compiler.served import ensemble_parts, model_ir, served_model
from compiler.targets.monitor_config import config_from_ir
from runtime.contract import capture as contract
from runtime.contract.monitor_config import MonitorConfig
from runtime.local.serve import choose_endpoints, prepare_server
from runtime.monitor.job import run_job
from runtime.serving.ensemble_reference import ensemble_reference
from runtime.serving.sample_data import load_sample, to_inputs
from tests.integration.test_capture import parts  # noqa: F401 the fixture: Triton, its venv

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
MODEL = "car-price-pipeline"

pytestmark = pytest.mark.slow


def captured(project: Path) -> pd.DataFrame:
    folder = project / ".kiln" / "data" / MODEL / contract.CAPTURED
    files = [f for f in sorted(folder.rglob("*.parquet")) if not f.name.startswith(".")]
    assert files, f"nothing captured under {folder}"
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_n_requests_in_n_rows_out_with_the_ensembles_answers(
    parts: tuple[object, object],  # noqa: F811
    tmp_path: Path,
) -> None:
    local = served_model(SPECS, MODEL, "local", ROOT / "generated")
    assert local.capture_step is not None
    # The data store (.kiln/data, relative) and the server's folder land in tmp_path.
    local = dataclasses.replace(local, root=tmp_path)
    _, frame = load_sample([t.name for t in local.signature.inputs])
    sample = to_inputs(frame, local.signature.inputs, 200)
    sizes = [1, 2, 1, 1, 4, 1, 3, 1] * 5  # 40 requests, concurrent, some of several rows
    starts = np.cumsum([0, *sizes[:-1]])
    answers: dict[str, np.ndarray] = {}

    server = prepare_server(local, choose_endpoints())
    server.start()
    try:
        server.wait_ready(timeout=60)

        def ask(index: int) -> None:
            rows = slice(int(starts[index]), int(starts[index]) + sizes[index])
            entries = []
            for tensor in local.signature.inputs:
                value = sample[tensor.name][rows]
                entry = grpcclient.InferInput(tensor.name, list(value.shape), "FP32")
                entry.set_data_from_numpy(value)
                entries.append(entry)
            client = grpcclient.InferenceServerClient(server.endpoints.grpc)
            headers = {contract.REQUEST_ID_HEADER: f"q{index}"}
            answer = client.infer(MODEL, entries, headers=headers)
            client.close()
            answers[f"q{index}"] = answer.as_numpy("prediction")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, range(len(sizes))))
    finally:
        assert server.stop() == 0  # SIGTERM: the capture step writes what it holds
    rows = captured(tmp_path)
    assert len(rows) == sum(sizes)
    assert rows[contract.REQUEST_ID].is_unique
    assert (rows[contract.MODEL_VERSION] == 1).all() and (rows["environment"] == "local").all()
    for index, size in enumerate(sizes):
        ids = [contract.row_request_id(f"q{index}", row, size) for row in range(size)]
        kept = rows.set_index(contract.REQUEST_ID).loc[ids]
        start = int(starts[index])
        for tensor in local.signature.inputs:  # the raw inputs, as sent
            sent = sample[tensor.name][start : start + size].reshape(-1)
            assert np.array_equal(kept[tensor.name].to_numpy(np.float32), sent)
        # The final prediction, as the ensemble answered it.
        answered = answers[f"q{index}"].reshape(-1)
        assert np.array_equal(kept["prediction"].to_numpy(np.float32), answered)
    # And the answers are the pipeline's, computed in process from the same steps.
    ir, root = model_ir(SPECS, MODEL, "local")
    config_text, steps = ensemble_parts(ir, root)
    reference = ensemble_reference(config_text, steps)
    total = int(sum(sizes))
    expected = reference.run({k: v[:total] for k, v in sample.items()}, ["prediction"])
    served = np.concatenate([answers[f"q{i}"] for i in range(len(sizes))])
    # Close, not equal: Triton batched concurrent requests together, and onnxruntime may
    # round a row differently in another batch (float32, a few ulps).
    np.testing.assert_allclose(
        served.reshape(expected["prediction"].shape), expected["prediction"], rtol=1e-5
    )
    monitored(tmp_path, [t.name for t in local.signature.inputs], len(rows))


def monitored(project: Path, inputs: list[str], rows: int) -> None:
    """The monitor job over the ensemble's captured folder. The example ensemble has no
    monitoring section (its FeatureSet has features its signature does not take, which
    captured rows cannot hold), so the config is car-price's (the same data set) narrowed
    to the ensemble's inputs and prediction column, and without targets."""
    price, _ = model_ir(SPECS, "car-price", "local")
    raw = config_from_ir(price).model_dump(by_alias=True, exclude_none=True)
    raw["model"] = MODEL
    raw["columns"]["prediction"] = "prediction"
    raw["columns"]["features"] = [f for f in raw["columns"]["features"] if f["name"] in inputs]
    raw["analysis"] = {"uri": "captured", "format": "parquet"}
    raw["chunking"] = {"size": 35}  # the 70 captured rows make two chunks
    for unused in ("labels", "performance", "data_quality", "alerts", "routes"):
        raw.pop(unused, None)
    config = MonitorConfig.model_validate(raw)
    subprocess.run(
        [sys.executable, "-m", "runtime.examples.example_data", "--out", str(project / "ex")],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    reference = pd.read_parquet(project / "ex" / "car-price" / "reference.parquet")
    reference = reference.head(3500).rename(columns={"y_pred": "prediction"})
    reference.to_parquet(project / "reference.parquet")
    folder = project / ".kiln" / "data" / MODEL / contract.CAPTURED
    run = run_job(
        config, project / "monitor", str(project / "reference.parquet"), str(folder), deliver=False
    )
    assert run.error is None and run.analysis is not None
    assert run.analysis.rows == rows
    drift = [o for o in run.outcomes if o.signal == "drift"]
    assert drift and all(o.status == "ok" for o in drift), [o.message for o in drift]
