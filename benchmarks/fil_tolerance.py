"""How far Triton's FIL backend can be from xgboost and lightgbm: the gap that
`kiln smoke`'s per-format tolerance (runtime/serving/references.py) is derived from.

FIL ships only in NVIDIA's containers, so it is not run here. Two stand-ins, both on
the CPU, both reading the model through Treelite as FIL does:

* `float32`: the forest as FIL holds it (Treelite's dump, thresholds and leaf values
  rounded to float32, `x <= t` kept as FIL's `x < nextafter(t)`, one float32
  accumulator), evaluated here in numpy, the trees summed in three orders (in turn,
  backwards, and in 32 interleaved partial sums as GPU threads do) and the largest gap
  kept. The same code in float64 must equal the library (checked: `float64 check`),
  so the evaluator itself is not the gap.
* `gtil`: Treelite's own reference predictor (`treelite.gtil`), which computes in the
  model's threshold type: float32 for XGBoost, float64 for LightGBM.

Models: the example platform's `car-price-gbm` (LightGBM, 200 trees) on NannyML's car
price rows; XGBoost and LightGBM trained here on NannyML's car-loan and car-price rows
(200 trees each, fixed seeds); the formats golden tree's small xgboost and lightgbm
files on random rows. Needs treelite (the dev extra):

    .venv/bin/python benchmarks/fil_tolerance.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.contract.tree_predict import TreePredictor  # noqa: E402

GOLDEN = ROOT / "tests" / "golden" / "formats" / "specs" / "artifacts" / "models"
CAR_PRICE_GBM = ROOT / "specs" / "artifacts" / "models" / "car-price-gbm" / "1" / "model.txt"
PRICE_FEATURES = ["car_age", "km_driven", "price_new", "accident_count", "door_count"]
LOAN_FEATURES = ["car_value", "debt_to_income_ratio", "loan_length", "driver_tenure"]
ORDERS = ("in turn", "backwards", "32 partial sums")


@dataclass(frozen=True)
class Tree:
    """One tree as flat arrays; a leaf is its own child, so walking stops there."""

    feature: np.ndarray
    threshold: np.ndarray
    below: np.ndarray  # the child taken when the test holds
    above: np.ndarray
    missing_below: np.ndarray  # where NaN goes
    leaf: np.ndarray
    depth: int


_TESTS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def _tree(nodes: list[dict[str, Any]], dtype: type) -> Tree:
    size = max(n["node_id"] for n in nodes) + 1
    feature = np.zeros(size, np.int64)
    threshold = np.zeros(size, dtype)
    below = np.arange(size)
    above = np.arange(size)
    missing_below = np.zeros(size, bool)
    leaf = np.zeros(size, dtype)
    for node in nodes:
        i = node["node_id"]
        if "leaf_value" in node:
            leaf[i] = dtype(node["leaf_value"])
            continue
        if node["node_type"] != "numerical_test_node":
            raise ValueError(f"{node['node_type']} splits are not emulated")
        op = node["comparison_op"]
        # Every op as `x <= t` or `x < t` with the children swapped for > and >=.
        left_when = op in ("<", "<=")
        feature[i] = node["split_feature_id"]
        threshold[i] = dtype(node["threshold"])
        below[i], above[i] = (
            (node["left_child"], node["right_child"])
            if left_when
            else (node["right_child"], node["left_child"])
        )
        missing_below[i] = node["default_left"] == left_when
        leaf[i] = np.nan
    ops = {n["comparison_op"] for n in nodes if "comparison_op" in n}
    if len(ops - {"<", ">="}) and len(ops - {"<=", ">"}):
        raise ValueError(f"mixed comparison ops {ops}")
    return Tree(feature, threshold, below, above, missing_below, leaf, len(nodes))


def _strict(nodes: list[dict[str, Any]]) -> bool:
    return any(n.get("comparison_op") in ("<", ">=") for n in nodes)


def _leaves(tree: Tree, strict: bool, rows: np.ndarray) -> np.ndarray:
    at = np.zeros(len(rows), np.int64)
    test = np.less if strict else np.less_equal
    for _ in range(tree.depth):
        x = rows[np.arange(len(rows)), tree.feature[at]]
        go = np.where(np.isnan(x), tree.missing_below[at], test(x, tree.threshold[at]))
        step = np.where(go, tree.below[at], tree.above[at])
        if np.array_equal(step, at):
            break
        at = step
    return tree.leaf[at]


def forest(dump: dict[str, Any], rows: np.ndarray, dtype: type, order: str) -> np.ndarray:
    """The model's output per row ([n] for one target), computed in `dtype` throughout."""
    if dump["num_target"] != 1 or dump["num_class"] != [1] or dump["average_tree_output"]:
        raise ValueError("only single-output forests are emulated")
    values = rows.astype(dtype)
    leaves = np.stack(
        [_leaves(_tree(t["nodes"], dtype), _strict(t["nodes"]), values) for t in dump["trees"]]
    )
    if order == "backwards":
        leaves = leaves[::-1]
    if order == "32 partial sums":
        parts = [_sum(leaves[i::32], dtype) for i in range(min(32, len(leaves)))]
        total = _sum(np.stack(parts), dtype)
    else:
        total = _sum(leaves, dtype)
    total = (total + dtype(dump["base_scores"][0])).astype(dtype)
    if dump["postprocessor"] == "sigmoid":
        alpha = dtype(dump["sigmoid_alpha"])
        return (dtype(1) / (dtype(1) + np.exp(-alpha * total))).astype(dtype)
    if dump["postprocessor"] != "identity":
        raise ValueError(f"postprocessor {dump['postprocessor']} is not emulated")
    return total


def _sum(leaves: np.ndarray, dtype: type) -> np.ndarray:
    total = np.zeros(leaves.shape[1], dtype)
    for row in leaves:  # one accumulator, tree by tree, as FIL's threads add
        total = (total + row).astype(dtype)
    return total


def treelite_model(path: Path) -> Any:
    import treelite

    if path.suffix == ".json":
        return treelite.frontend.load_xgboost_model(str(path))
    return treelite.frontend.load_lightgbm_model(str(path))


@dataclass(frozen=True)
class Gap:
    model: str
    library: str
    rows: int
    trees: int
    scale: float  # the largest |library| value
    float32_abs: float
    float32_rel: float
    gtil_abs: float
    float64_check: float
    flipped: int  # rows whose float32 path left a leaf the library reached (gap > 1e-3 rel)
    of_largest: float  # the largest float32 gap of the other rows, over max |library|

    def row(self) -> str:
        return (
            f"| {self.model} | {self.library} | {self.rows} | {self.trees} | {self.scale:.3g} "
            f"| {self.float32_abs:.3g} | {self.float32_rel:.3g} | {self.gtil_abs:.3g} "
            f"| {self.float64_check:.3g} | {self.flipped} | {self.of_largest:.2g} |"
        )


def measure(name: str, path: Path, rows: np.ndarray) -> Gap:
    """The gaps of one model file on float32 `rows` against its library's own answer."""
    import treelite

    model_type = "xgboost_json" if path.suffix == ".json" else "lightgbm"
    predictor = TreePredictor(str(path), {"model_type": model_type})
    library = predictor.raw(rows).astype(np.float64).reshape(-1)
    model = treelite_model(path)
    dump = json.loads(model.dump_as_json())
    exact = forest(dump, rows, np.float64, "in turn")
    emulated = [forest(dump, rows, np.float32, o).astype(np.float64) for o in ORDERS]
    gaps = np.max([np.abs(e - library) for e in emulated], axis=0)
    relative = gaps / np.maximum(np.abs(library), np.finfo(np.float32).tiny)
    gtil = treelite.gtil.predict(model, rows, nthread=1).astype(np.float64).reshape(-1)
    return Gap(
        name,
        predictor.library,
        len(rows),
        len(dump["trees"]),
        float(np.max(np.abs(library))),
        float(gaps.max()),
        float(relative.max()),
        float(np.max(np.abs(gtil - library))),
        float(np.max(np.abs(exact - library))),
        int(np.sum(relative > 1e-3)),
        float(gaps[relative <= 1e-3].max(initial=0.0) / np.max(np.abs(library))),
    )


def _nannyml() -> Any:
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    import nannyml

    return nannyml


def _frame_rows(frame: Any, names: list[str]) -> np.ndarray:
    return frame[names].dropna().to_numpy(dtype=np.float32)


def trained(folder: Path) -> list[tuple[str, Path, np.ndarray]]:
    """XGBoost and LightGBM models of 200 trees on NannyML's rows, and their rows."""
    import lightgbm
    import xgboost

    nml = _nannyml()
    loan_ref, loan_analysis, _ = nml.load_synthetic_car_loan_dataset()
    price_ref, price_analysis, _ = nml.load_synthetic_car_price_dataset()
    loan_x = _frame_rows(loan_ref, LOAN_FEATURES)
    loan_y = loan_ref.dropna(subset=LOAN_FEATURES)["repaid"].to_numpy()
    price_x = _frame_rows(price_ref, PRICE_FEATURES)
    price_y = price_ref.dropna(subset=PRICE_FEATURES)["y_true"].to_numpy()
    loan_rows = np.vstack([loan_x, _frame_rows(loan_analysis, LOAN_FEATURES)])
    price_rows = np.vstack([price_x, _frame_rows(price_analysis, PRICE_FEATURES)])
    made = []
    for objective, x, y, rows, tag in (
        ("binary:logistic", loan_x, loan_y, loan_rows, "car-loan"),
        ("reg:squarederror", price_x, price_y, price_rows, "car-price"),
    ):
        matrix = xgboost.DMatrix(x, label=y)
        params = {"objective": objective, "max_depth": 6, "seed": 0, "nthread": 1}
        path = folder / f"xgb-{tag}.json"
        xgboost.train(params, matrix, 200).save_model(path)
        made.append((f"xgboost {objective} on {tag}", path, rows))
    for objective, x, y, rows, tag in (
        ("binary", loan_x, loan_y, loan_rows, "car-loan"),
        ("regression", price_x, price_y, price_rows, "car-price"),
    ):
        data = lightgbm.Dataset(x, label=y)
        params = {"objective": objective, "seed": 0, "verbose": -1, "num_threads": 1}
        path = folder / f"lgbm-{tag}.txt"
        lightgbm.train(params, data, 200).save_model(path)
        made.append((f"lightgbm {objective} on {tag}", path, rows))
    return made


def examples() -> list[tuple[str, Path, np.ndarray]]:
    nml = _nannyml()
    reference, analysis, _ = nml.load_synthetic_car_price_dataset()
    price = np.vstack(
        [_frame_rows(reference, PRICE_FEATURES), _frame_rows(analysis, PRICE_FEATURES)]
    )
    noise = np.random.default_rng(0).normal(size=(20_000, 4)).astype(np.float32)
    return [
        ("car-price-gbm (example platform)", CAR_PRICE_GBM, price),
        ("default-xgb (golden)", GOLDEN / "default-xgb" / "1" / "xgboost.json", noise),
        ("income-lgbm (golden)", GOLDEN / "income-lgbm" / "1" / "model.txt", noise),
    ]


def main() -> None:
    print(
        "| model | library | rows | trees | max abs(library) | float32 abs | float32 rel "
        "| gtil abs | float64 check | flipped | gap / max |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="kiln-fil-") as folder:
        for name, path, rows in [*examples(), *trained(Path(folder))]:
            print(measure(name, path, rows).row(), flush=True)


if __name__ == "__main__":
    main()
