"""Trains the regressor step of the example ensemble `car-price-pipeline`.

The python step (specs/artifacts/models/car-price-pipeline/prep/model.py) derives the
features from the raw listing; this fits a scaled ridge regression on what it gives
for NannyML's car-price reference period and exports it with skl2onnx. It prints the
file's sha256 for the spec (the step's artifact.sha256) and the mean absolute error.

    python -m runtime.examples.train_ensemble_example
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FOLDER = Path("specs/artifacts/models/car-price-pipeline")
N_FEATURES = 5  # what the prep step's `features` output holds per row
OPSET = 17


def _prep(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("car_price_prep", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(folder: Path = FOLDER) -> tuple[bytes, float]:
    """The ONNX regressor's bytes and its mean absolute error on the reference period."""
    import nannyml
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    prep = _prep(folder / "prep" / "model.py")
    reference = nannyml.load_synthetic_car_price_dataset()[0]
    columns = {n: reference[n].to_numpy(np.float32).reshape(-1, 1) for n in prep.INPUTS}
    x = prep.compute(**columns)["features"]
    y = reference["y_true"].to_numpy(np.float64)
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x, y)
    features = [("features", FloatTensorType([None, N_FEATURES]))]
    proto = convert_sklearn(model, initial_types=features, target_opset=OPSET)
    # skl2onnx names the graph with a random id: a fixed name makes the file reproducible.
    proto.graph.name = "car_price_pipeline_regressor"
    payload: bytes = proto.SerializeToString(deterministic=True)
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    predicted = session.run(None, {"features": x})[0].ravel()
    return payload, float(np.mean(np.abs(predicted - y)))


def main(argv: Sequence[str] | None = None) -> int:
    payload, mae = train()
    target = FOLDER / "regressor" / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    print(f"wrote {target}: sha256 {hashlib.sha256(payload).hexdigest()}, mae {mae:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
