"""Served traffic monitored: NannyML's car-loan analysis period replayed through the real
local Triton, captured, labelled with `kiln label`'s writer, and monitored with the
compiled config (analysis = the local partition of the captured folder, labels joined by
request id). The drift
found on the served traffic equals the drift found on the same rows read from a file,
and realised performance runs on the served rows. Same skip rules as test_capture.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient

from compiler.served import model_ir, served_model
from compiler.targets.monitor_config import config_from_ir
from runtime.contract import capture as contract
from runtime.local.labels import write_labels
from runtime.local.serve import assemble_local
from runtime.monitor.job import run_job
from runtime.serving.sample_data import to_inputs
from runtime.serving.smoke import reference_session, run_reference
from tests.integration.test_capture import MODEL, ROOT, SPECS, inputs, parts, start

ROWS = 10_000  # two chunks of the spec's 5,000
BATCH = 64  # the model's max_batch_size

pytestmark = pytest.mark.slow
__all__ = ["parts"]  # the fixture, shared with test_capture.py


def example_data(folder: Path) -> tuple[Path, pd.DataFrame]:
    subprocess.run(
        [sys.executable, "-m", "runtime.examples.example_data", "--out", str(folder)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    analysis = pd.read_parquet(folder / "car-loan" / "analysis.parquet")
    return folder / "car-loan" / "reference.parquet", analysis


def drift(run: object) -> dict[str, pd.DataFrame]:
    tables = {}
    for outcome in run.outcomes:  # type: ignore[attr-defined]
        if outcome.signal in ("drift", "multivariate_drift") and outcome.table is not None:
            table = outcome.table
            tables[outcome.name] = table[table["period"] == "analysis"].reset_index(drop=True)
    return tables


def test_drift_on_served_traffic_equals_drift_on_the_same_rows_from_a_file(
    parts: tuple[object, object], tmp_path: Path
) -> None:
    ir, _ = model_ir(SPECS, MODEL, "local")
    reference, analysis = example_data(tmp_path / "examples")
    names = [t.name for t in ir.inputs]
    analysis = analysis.dropna(subset=names).head(ROWS).reset_index(drop=True)
    arrays = to_inputs(analysis, ir.inputs)
    local = served_model(SPECS, MODEL, "local", ROOT / "generated")
    assemble_local(local, tmp_path / "repository")
    server = start(parts, tmp_path / "repository", tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.endpoints.grpc)
        for batch, first in enumerate(range(0, ROWS, BATCH)):
            rows = slice(first, min(first + BATCH, ROWS))
            headers = {contract.REQUEST_ID_HEADER: f"loan-{batch}"}
            client.infer(MODEL, inputs(local, arrays, rows), headers=headers)
        client.close()
    finally:
        assert server.stop() == 0

    # Ground truth for every served row, keyed as the capture keyed it.
    keys = [
        contract.row_request_id(f"loan-{b}", r, min(BATCH, ROWS - f))
        for b, f in enumerate(range(0, ROWS, BATCH))
        for r in range(min(BATCH, ROWS - f))
    ]
    truth = tmp_path / "truth.csv"
    pd.DataFrame({"request_id": keys, "repaid": analysis["repaid"]}).to_csv(truth, index=False)
    labels = tmp_path / ".kiln" / "data" / MODEL / contract.LABELS
    by_request = [(contract.REQUEST_ID, contract.REQUEST_ID)]
    assert write_labels(truth, "repaid", labels, by_request)[1] == ROWS

    config = config_from_ir(ir)
    assert config.labels is not None
    assert config.analysis.uri.endswith("/captured/environment=local/")
    config = config.model_copy(
        update={"labels": config.labels.model_copy(update={"uri": str(labels)}), "alerts": []}
    )
    captured = tmp_path / ".kiln" / "data" / contract.environment_path(MODEL, "local")
    served = run_job(config, tmp_path / "served", str(reference), str(captured), deliver=False)
    assert served.error is None and served.analysis is not None
    assert served.analysis.rows == ROWS

    # The same rows, answered by onnxruntime in-process, read from one file.
    session = reference_session(Path(local.artifacts[0].uri))
    answers = run_reference(session, arrays, ["label", "probabilities"])
    table = {n: _values(arrays[n]) for n in names}
    # Served at the times the capture recorded: the rows of one request share a time, and
    # NannyML orders rows by time, so the file gets the same times (not the data set's).
    served_at = served.analysis.frame.set_index(contract.REQUEST_ID)["timestamp"]
    table.update(
        timestamp=served_at.loc[keys].to_numpy(),
        y_pred=answers["label"],
        y_pred_proba=answers["probabilities"][:, 1],
        repaid=analysis["repaid"],
    )
    from_file = tmp_path / "rows.parquet"
    pd.DataFrame(table).to_parquet(from_file)
    plain = config.model_copy(update={"labels": None})
    offline = run_job(plain, tmp_path / "file", str(reference), str(from_file), deliver=False)
    assert offline.error is None

    found, expected = drift(served), drift(offline)
    assert found and found.keys() == expected.keys()
    for name, table_found in found.items():
        numbers = table_found.select_dtypes("number").columns
        pd.testing.assert_frame_equal(table_found[numbers], expected[name][numbers])
    realised = [o for o in served.outcomes if o.signal == "realized_performance"]
    assert realised and realised[0].status == "ok", [o.message for o in realised]


def _values(array: np.ndarray) -> np.ndarray:
    flat = array.reshape(len(array))
    return np.array([v.decode() for v in flat], dtype=object) if flat.dtype == object else flat
