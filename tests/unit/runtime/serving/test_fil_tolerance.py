"""`kiln smoke`'s FIL tolerance holds for forests evaluated as FIL holds them.

FIL itself ships only in NVIDIA's containers. benchmarks/fil_tolerance.py evaluates a
forest from Treelite's dump (what FIL loads) with float32 thresholds, leaves and sums;
here the same evaluation in float64 must equal the library, so the evaluator is right,
and in float32 it must stay within the format's tolerance (runtime/serving/references.py)
on NannyML's rows, for the example platform's LightGBM model and an XGBoost model
trained here. Treelite's own predictor (GTIL, float32 for XGBoost) is held to it too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import treelite  # the dev extra: only this test and the benchmark use it

from benchmarks.fil_tolerance import (
    CAR_PRICE_GBM,
    LOAN_FEATURES,
    ORDERS,
    PRICE_FEATURES,
    forest,
    treelite_model,
)
from runtime.contract.signature import Tensor
from runtime.contract.tree_predict import TreePredictor
from runtime.serving.references import FIL_TOLERANCES
from runtime.serving.smoke import compare_outputs

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
import nannyml

OUTPUT = (Tensor("output__0", "fp32", (-1, 1)),)
ROWS = 20_000


def _rows(frame: object, names: list[str]) -> np.ndarray:
    return frame[names].dropna().head(ROWS).to_numpy(dtype=np.float32)  # type: ignore[index]


def _served_within(library: str, emulated: np.ndarray, want: np.ndarray) -> list[str]:
    served = {"output__0": emulated.astype(np.float32).reshape(-1, 1)}
    wanted = {"output__0": want.astype(np.float32).reshape(-1, 1)}
    return compare_outputs(OUTPUT, served, wanted, True, library, FIL_TOLERANCES[library])


def _check(path: Path, model_type: str, rows: np.ndarray) -> None:
    predictor = TreePredictor(str(path), {"model_type": model_type})
    want = predictor.raw(rows).astype(np.float64)
    dump = json.loads(treelite_model(path).dump_as_json())
    exact = forest(dump, rows, np.float64, "in turn")
    # XGBoost sums in float32 itself; LightGBM in float64, which the evaluator matches.
    scale = float(np.max(np.abs(want)))
    assert np.max(np.abs(exact - want)) <= (1e-6 if model_type == "xgboost_json" else 1e-9) * scale
    for order in ORDERS:
        emulated = forest(dump, rows, np.float32, order)
        assert _served_within(predictor.library, emulated, want) == [], order
        # Not vacuous: the float32 forest is not the library's answer bit for bit.
        assert not np.array_equal(emulated.astype(np.float32), want.astype(np.float32))


def test_the_example_lightgbm_model_is_within_its_fil_tolerance() -> None:
    reference, _, _ = nannyml.load_synthetic_car_price_dataset()
    _check(CAR_PRICE_GBM, "lightgbm", _rows(reference, PRICE_FEATURES))


def test_an_xgboost_model_on_nannyml_rows_is_within_its_fil_tolerance(tmp_path: Path) -> None:
    import xgboost

    reference, analysis, _ = nannyml.load_synthetic_car_loan_dataset()
    train = reference.dropna(subset=LOAN_FEATURES).head(5000)
    matrix = xgboost.DMatrix(_rows(train, LOAN_FEATURES), label=train["repaid"].to_numpy())
    params = {"objective": "binary:logistic", "max_depth": 6, "seed": 0, "nthread": 1}
    path = tmp_path / "xgboost.json"
    xgboost.train(params, matrix, 200).save_model(path)
    rows = _rows(analysis, LOAN_FEATURES)
    _check(path, "xgboost_json", rows)
    gtil = treelite.gtil.predict(treelite_model(path), rows, nthread=1).reshape(-1)
    want = TreePredictor(str(path), {"model_type": "xgboost_json"}).raw(rows)
    assert _served_within("xgboost", gtil, want) == []


@pytest.mark.parametrize("library", sorted(FIL_TOLERANCES))
def test_the_tolerance_still_catches_a_missing_tree(library: str) -> None:
    """One leaf of 200 trees left out (a fault, not rounding) is reported."""
    reference, _, _ = nannyml.load_synthetic_car_price_dataset()
    rows = _rows(reference, PRICE_FEATURES)
    predictor = TreePredictor(str(CAR_PRICE_GBM), {"model_type": "lightgbm"})
    want = predictor.raw(rows)
    dump = json.loads(treelite_model(CAR_PRICE_GBM).dump_as_json())
    dump["trees"] = dump["trees"][:-1]
    problems = _served_within(library, forest(dump, rows, np.float32, "in turn"), want)
    assert problems and f"differs from {library}" in problems[0]
