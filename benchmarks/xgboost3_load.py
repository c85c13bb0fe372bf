"""What reading an XGBoost 3 file right costs when a tree model is loaded: the header walk
and base_score rewrite of runtime/contract/xgboost_file.py, next to xgboost 2.1's own
load of the same bytes, for each model file given (JSON or UBJSON). Kiln runs xgboost
2.1, so the files come from a scratch environment with XGBoost 3, for example:

    python -m venv /tmp/xgb3 && /tmp/xgb3/bin/pip install "xgboost>=3.1" numpy
    /tmp/xgb3/bin/python benchmarks/xgboost3_load.py --write /tmp/xgb3-models
    .venv/bin/python benchmarks/xgboost3_load.py /tmp/xgb3-models/*

`--write FOLDER` trains a 500-tree, depth-6 regressor on 20,000 random rows of eight
features with XGBoost (3 in that environment) and saves it as JSON and UBJSON there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROUNDS = 5


def write(folder: Path) -> None:
    import xgboost

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(20_000, 8)).astype(np.float32)
    target = 3 * rows[:, 0] + 5 * np.sin(rows[:, 1]) + 100
    params = {"max_depth": 6, "nthread": 2, "seed": 0}
    booster = xgboost.train(params, xgboost.DMatrix(rows, label=target), 500)
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ("json", "ubj"):
        booster.save_model(folder / f"regressor-500.{suffix}")
    print(f"xgboost {xgboost.__version__} wrote {folder}")


def best(action: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(path: Path) -> None:
    import xgboost

    from runtime.contract.xgboost_file import for_xgboost_2

    payload = path.read_bytes()
    readable = for_xgboost_2(payload)
    rewrite = best(lambda: for_xgboost_2(payload))
    load = best(lambda: xgboost.Booster(model_file=bytearray(readable.payload)))
    print(
        f"| {path.name} | {len(payload) / 1e6:.1f} MB | {rewrite * 1e3:.0f} ms "
        f"| {load * 1e3:.0f} ms | xgboost {xgboost.__version__} |"
    )


def main() -> None:
    if sys.argv[1:2] == ["--write"]:
        write(Path(sys.argv[2]))
        return
    print("| file | size | header + rewrite | xgboost load | library |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name in sys.argv[1:]:
        measure(Path(name))


if __name__ == "__main__":
    main()
