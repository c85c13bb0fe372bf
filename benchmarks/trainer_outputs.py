"""The built-in trainer's outputs side by side: ONNX against the libraries' own files.

For each of xgboost with `output: onnx`, xgboost with `output: native` and lightgbm with
`output: native`, one train step as the pipeline runs it (NannyML's car-loan reference
period, its five numeric features, 100 trees, seed 0), then the file run on the last
10,000 rows as the evaluate step runs it (runtime/steps/model_runner.py: onnxruntime, or
the library answering as FIL does). Prints the file's size, the step's time and the
scoring throughput (the median of --repeat rounds).

Usage::

    .venv/bin/python benchmarks/trainer_outputs.py [--trees 100] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import nannyml  # noqa: E402

from runtime.contract.signature import Tensor  # noqa: E402
from runtime.contract.steps import TRAIN_ENV  # noqa: E402
from runtime.steps import train  # noqa: E402
from runtime.steps.model_runner import open_runner  # noqa: E402

FEATURES = [
    {"name": "car_value", "dtype": "fp32", "kind": "continuous"},
    {"name": "debt_to_income_ratio", "dtype": "fp32", "kind": "continuous"},
    {"name": "loan_length", "dtype": "fp32", "kind": "continuous"},
    {"name": "repaid_loan_on_prev_car", "dtype": "int64", "kind": "categorical"},
    {"name": "driver_tenure", "dtype": "fp32", "kind": "continuous"},
]
CASES = (
    ("xgboost", "xgb_classifier", "onnx"),
    ("xgboost", "xgb_classifier", "native"),
    ("lightgbm", "lgbm_classifier", "native"),
)
SCORED_ROWS = 10_000


def one(work: Path, library: str, estimator: str, output: str, args: argparse.Namespace) -> str:
    out = work / f"{library}-{output}"
    os.environ[TRAIN_ENV.output_dir] = str(out)
    trainer = {"library": library, "estimator": estimator, "output": output}
    trainer["params"] = {"n_estimators": args.trees}
    argv = ["--trainer", json.dumps(trainer), "--task", "binary_classification"]
    argv += ["--features", json.dumps(FEATURES), "--name", "bench"]
    start = time.perf_counter()
    if train.main(argv) != 0:
        raise SystemExit(f"the train step failed for {library} {output}")
    seconds = time.perf_counter() - start
    [model] = list(out.iterdir())
    runner = open_runner(model)
    rows = nannyml.load_synthetic_car_loan_dataset()[0].tail(SCORED_ROWS)
    feed = runner.feeds(rows, [Tensor(f["name"], f["dtype"], (-1, 1)) for f in FEATURES])
    runner.run(None, feed)  # warm-up
    rounds = []
    for _ in range(args.repeat):
        tick = time.perf_counter()
        runner.run(None, feed)
        rounds.append(time.perf_counter() - tick)
    median = statistics.median(rounds)
    return (
        f"| {library} | {output} | {model.name} | {model.stat().st_size:,} | {seconds:.2f} | "
        f"{median * 1000:.1f} | {SCORED_ROWS / median:,.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data = work / "loan.parquet"
        nannyml.load_synthetic_car_loan_dataset()[0].to_parquet(data)
        for variable, value in ((TRAIN_ENV.data, str(data)), (TRAIN_ENV.target, "repaid")):
            os.environ[variable] = value
        os.environ[TRAIN_ENV.seed] = "0"
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
        print("| library | output | file | bytes | train step s | 10k rows ms | rows/s |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for library, estimator, output in CASES:
            print(one(work, library, estimator, output, args), flush=True)


if __name__ == "__main__":
    main()
