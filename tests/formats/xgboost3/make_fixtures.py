"""Writes the XGBoost 3 model files, and XGBoost 3's own predictions for them, that the
tree-model loader is tested on (run by hand; the files are committed). Kiln itself runs
xgboost 2.1, so this needs a scratch environment, never Kiln's:

    python -m venv /tmp/xgb3 && /tmp/xgb3/bin/pip install "xgboost>=3.1" numpy pandas
    /tmp/xgb3/bin/python tests/formats/xgboost3/make_fixtures.py

Each model is trained by XGBoost 3 on four random features (fixed seeds), 4 rounds of
depth-3 trees, and saved as JSON and UBJSON. `rows.npy` holds the rows they are asked
about; `<name>.predict.npy` what XGBoost 3's `inplace_predict` answers (P(class 1), a
value, or a probability per class). XGBoost 3.1 and later store base_score as a
bracketed vector ("[4.475E-1]", one value per class or target); 3.0 still wrote a scalar.

- binary: binary:logistic; regressor: reg:squarederror around 10 (a base score far from
  xgboost 2.1's default 0.5); multiclass: multi:softprob over three classes (one base
  score per class); two-targets: reg:squarederror with two targets, which Kiln refuses;
  categorical: binary:logistic on a numeric and a categorical feature (XGBoost 3.1's
  category encoder, `cats`, is in the file), asked with the category codes as FIL gets
  them (`categorical.rows.npy`).

It also writes the models of the error cases of KILN1732-KILN1734 (tests/errors/cases),
on four numeric features of their FeatureSet: two targets (KILN1733); a binary model
saved as `xgboost.model`, which XGBoost 3 writes as UBJSON (KILN1734); and XGBoost 3's
JSON with its version raised to 4.0.0, as no XGBoost 4 exists to write one (KILN1732).
After regenerating, refresh the sha256 those cases declare (`sha256sum`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xgboost

HERE = Path(__file__).resolve().parent
FEATURES = ["age", "income", "debt_ratio", "tenure"]
CASES = HERE.parents[1] / "errors" / "cases"
CASE_MODEL = Path("specs/artifacts/models/car-loan-default/2")
LOAN_FEATURES = ["car_value", "debt_to_income_ratio", "loan_length", "driver_tenure"]


def _models(rows: np.ndarray) -> dict[str, tuple[dict[str, object], np.ndarray]]:
    rng = np.random.default_rng(11)
    classes = np.digitize(rows[:, 0] + rows[:, 3] + rng.normal(0, 0.3, len(rows)), [-0.5, 0.7])
    return {
        "binary": ({"objective": "binary:logistic"}, (rows[:, 0] + rows[:, 1] > 0.4) * 1),
        "regressor": ({"objective": "reg:squarederror"}, 3 * rows[:, 0] + rows[:, 2] ** 2 + 10),
        "multiclass": ({"objective": "multi:softprob", "num_class": 3}, classes),
        "two-targets": (
            {"objective": "reg:squarederror"},
            np.stack([2 * rows[:, 0] + 5, rows[:, 1] - 3], axis=1),
        ),
    }


def main() -> None:
    rows = np.random.default_rng(7).normal(size=(200, 4)).astype(np.float32)
    np.save(HERE / "rows.npy", rows[:50])
    for name, (objective, labels) in _models(rows).items():
        data = xgboost.DMatrix(rows, label=labels, feature_names=FEATURES)
        params = {**objective, "max_depth": 3, "eta": 0.3, "seed": 1, "nthread": 1}
        booster = xgboost.train(params, data, num_boost_round=4)
        booster.save_model(HERE / f"{name}.json")
        booster.save_model(HERE / f"{name}.ubj")
        np.save(HERE / f"{name}.predict.npy", booster.inplace_predict(rows[:50]))
        param = json.loads((HERE / f"{name}.json").read_bytes())["learner"]["learner_model_param"]
        print(name, xgboost.__version__, "base_score", param["base_score"])
    categorical()
    error_cases(rows)


def categorical() -> None:
    import pandas as pd  # only this model needs a frame of categories

    rng = np.random.default_rng(3)
    kind = pd.Categorical(rng.choice(["a", "b", "c", "d"], 200))
    frame = pd.DataFrame({"amount": rng.normal(size=200).astype(np.float32), "kind": kind})
    labels = (frame["amount"] + (frame["kind"] == "b") * 1.5 > 0.5) * 1
    data = xgboost.DMatrix(frame, label=labels, enable_categorical=True)
    params = {"objective": "binary:logistic", "max_depth": 3, "seed": 1, "nthread": 1}
    booster = xgboost.train(params, data, num_boost_round=4)
    booster.save_model(HERE / "categorical.json")
    codes = np.stack([frame["amount"], kind.codes.astype(np.float32)], axis=1)[:50]
    np.save(HERE / "categorical.rows.npy", codes)
    np.save(HERE / "categorical.predict.npy", booster.inplace_predict(frame.head(50)))


def error_cases(rows: np.ndarray) -> None:
    models = _models(rows)
    for case, name, file in (
        ("format-xgboost-two-targets", "two-targets", "xgboost.json"),
        ("format-xgboost-ubjson-as-binary", "binary", "xgboost.model"),
        ("format-xgboost-newer-writer", "binary", "xgboost.json"),
    ):
        objective, labels = models[name]
        data = xgboost.DMatrix(rows, label=labels, feature_names=LOAN_FEATURES)
        booster = xgboost.train({**objective, "max_depth": 2, "seed": 1}, data, 2)
        folder = CASES / case / CASE_MODEL
        folder.mkdir(parents=True, exist_ok=True)
        booster.save_model(folder / file)
        if case == "format-xgboost-newer-writer":
            document = json.loads((folder / file).read_bytes())
            document["version"] = [4, 0, 0]
            (folder / file).write_text(json.dumps(document, separators=(",", ":")))


if __name__ == "__main__":
    main()
