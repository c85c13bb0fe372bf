"""Train the example platform's tree model, `car-price-gbm`: a LightGBM regressor on the
numeric columns of NannyML's synthetic car-price reference period, saved as LightGBM's
text model (what Triton's FIL backend loads, and what the local adapter serves).

    python -m runtime.examples.train_tree_example --out specs/artifacts/models/car-price-gbm/1

The first 80% of the period (ordered by time) trains, the rest gives the reported MAE.
One thread and a fixed seed make the file the same on every run with the same lightgbm.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np

# The numeric features of the car-listing FeatureSet, in its order (FIL reads numbers only).
FEATURES = ["car_age", "km_driven", "price_new", "accident_count", "door_count"]
TARGET = "y_true"


def train(out: Path) -> tuple[Path, float]:
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    import lightgbm
    import nannyml

    reference = nannyml.load_synthetic_car_price_dataset()[0].sort_values("timestamp")
    features = reference[FEATURES].to_numpy(dtype=np.float32)  # what FIL is given
    target = reference[TARGET].to_numpy(dtype=np.float64)
    cut = int(len(reference) * 0.8)
    params = {
        "objective": "regression",
        "num_leaves": 15,
        "learning_rate": 0.1,
        "num_threads": 1,
        "seed": 0,
        "deterministic": True,
        "verbose": -1,
    }
    data = lightgbm.Dataset(features[:cut], target[:cut], feature_name=FEATURES)
    booster = lightgbm.train(params, data, num_boost_round=60)
    mae = float(np.mean(np.abs(booster.predict(features[cut:]) - target[cut:])))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.txt"
    booster.save_model(str(path))
    return path, mae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    path, mae = train(args.out)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path}: sha256 {digest}, holdout MAE {mae:.2f}")


if __name__ == "__main__":
    main()
