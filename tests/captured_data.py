"""Captured traffic as the capture writes it (docs/serving.md, quality gates), for tests.

Rows are NannyML's car-loan analysis period scored by the example's real ONNX model with
onnxruntime. A `broken` version is the same model fed `car_value` in thousands (a unit bug
in a feature pipeline, the kind of change a quality gate exists to catch): its predictions
are real outputs of the model, on wrong inputs.

Layout: `<captured>/environment=<env>/version=<N>/date=<YYYY-MM-DD>/hour=<HH>/<part>.parquet`
with `request_id`, the timestamp (timestamp[us, UTC]), `model_version`, `environment`, the
features, `y_pred` and `y_pred_proba`.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tests.tools import REPO_ROOT

ONNX = REPO_ROOT / "specs" / "artifacts" / "models" / "car-loan-default" / "1" / "model.onnx"
FEATURES = {
    "car_value": np.float32,
    "salary_range": object,
    "debt_to_income_ratio": np.float32,
    "loan_length": np.float32,
    "repaid_loan_on_prev_car": np.int64,
    "size_of_downpayment": object,
    "driver_tenure": np.float32,
}
TIMESTAMP = "timestamp"


@cache
def car_loan_rows() -> pd.DataFrame:
    """The analysis period's features (50,000 rows), with a request id each."""
    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
    import nannyml as nml

    _, analysis, _ = nml.load_synthetic_car_loan_dataset()
    rows = analysis[list(FEATURES)].copy()
    rows.insert(0, "request_id", [f"req-{i:06d}" for i in analysis["id"]])
    return rows.reset_index(drop=True)


def score(rows: pd.DataFrame, broken: bool = False) -> pd.DataFrame:
    """`rows` with y_pred and y_pred_proba from the real model."""
    session = ort.InferenceSession(str(ONNX), providers=["CPUExecutionProvider"])
    inputs = {}
    for name, dtype in FEATURES.items():
        values = rows[name].to_numpy()
        if broken and name == "car_value":
            values = values / 1000.0
        inputs[name] = values.astype(dtype).reshape(-1, 1)
    label, probabilities = session.run(["label", "probabilities"], inputs)
    return rows.assign(y_pred=label.astype("int64"), y_pred_proba=probabilities[:, 1])


def write_captured(
    captured: Path,
    environment: str,
    version: int,
    scored: pd.DataFrame,
    start: datetime,
    step_s: float,
) -> None:
    """One row every `step_s` seconds from `start` (UTC), one file per hour partition."""
    stamps = pd.DatetimeIndex(
        [start + timedelta(seconds=i * step_s) for i in range(len(scored))]
    ).as_unit("us")
    frame = scored.assign(
        **{TIMESTAMP: stamps, "model_version": np.int64(version), "environment": environment}
    )
    for hour, part in frame.groupby(frame[TIMESTAMP].dt.floor("h")):
        folder = (
            captured
            / f"environment={environment}"
            / f"version={version}"
            / f"date={hour:%Y-%m-%d}"
            / f"hour={hour:%H}"
        )
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False)
        table = table.cast(
            table.schema.set(
                table.schema.get_field_index(TIMESTAMP),
                pa.field(TIMESTAMP, pa.timestamp("us", tz="UTC")),
            )
        )
        pq.write_table(table, folder / f"part-{len(list(folder.iterdir())):04d}.parquet")
