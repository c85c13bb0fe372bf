"""A declared ensemble captured on the real local Triton (tritonserver 2.51, python
backend, CPU), as `kiln serve car-price-pipeline` runs it: the committed configs of
generated/local (the user's steps, then the capture step), assembled by `prepare_server`.
N requests in, N requests' rows out after a SIGTERM: the raw inputs as sent and the
prediction equal to what the ensemble answered; the answers equal to the pipeline
computed in process (the smoke reference, whose capture step passes the answer on).
Same set-up and skip rules as test_capture.py.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient

from compiler.served import ensemble_parts, model_ir, served_model
from runtime.contract import capture as contract
from runtime.local.serve import choose_endpoints, prepare_server
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
    assert np.array_equal(served.reshape(expected["prediction"].shape), expected["prediction"])
