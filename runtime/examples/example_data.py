"""Write NannyML's bundled example data where the local environment's data store expects it.

    python -m runtime.examples.example_data --out DIR      # the local environment uses .kiln/data

Files (the example specs' data URIs are relative to the data store):

* DIR/car-loan/reference.parquet, DIR/car-loan/analysis.parquet
* DIR/car-price/reference.parquet, DIR/car-price/analysis.parquet
* DIR/car-loan/applications/reference.parquet, DIR/car-price/listings/reference.parquet: the
  reference period again, as the rows of each example FeatureSet's source (the folder its
  `source.uri` names), which the training pipeline snapshots

The analysis period ships without its targets (NannyML keeps them apart to show performance
estimation); here they are joined back on `id`, so the local monitor can compute realised
performance as well. Columns and dtypes are NannyML's otherwise (timestamps stay ISO 8601
strings; the features step parses them). Files are written with pinned parquet options, so
two runs give the same bytes.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from runtime.steps.pipeline_io import StepError, progress, run_main, sha256_bytes, write_parquet

STEP = "example_data"
DEFAULT_OUT = Path(".kiln") / "data"
# Folder name -> the NannyML loader's name (looked up after the import, see load()).
DATASETS: dict[str, str] = {
    "car-loan": "load_synthetic_car_loan_dataset",
    "car-price": "load_synthetic_car_price_dataset",
}
# Folder name -> the folder of its FeatureSet's source (specs/featuresets/*.yaml, source.uri).
FEATURE_SOURCES: dict[str, str] = {"car-loan": "applications", "car-price": "listings"}


def loader(name: str) -> Callable[[], Any]:
    # NannyML sends usage statistics on import unless told not to; this must run offline.
    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
    import nannyml

    function: Callable[[], Any] = getattr(nannyml, name)
    return function


def with_targets(analysis: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """Analysis rows with their targets; every analysis row must find exactly one."""
    if not targets["id"].is_unique:
        raise StepError("analysis targets repeat an id")
    joined = analysis.merge(targets, on="id", how="left", validate="one_to_one")
    target_columns = [c for c in targets.columns if c != "id"]
    if joined[target_columns].isna().any().any():
        raise StepError("some analysis rows have no target")
    return joined


def write_dataset(folder: str, out: Path) -> None:
    start = time.perf_counter()
    reference, analysis, targets = loader(DATASETS[folder])()
    frames = {
        "reference": reference,
        "analysis": with_targets(analysis, targets),
        f"{FEATURE_SOURCES[folder]}/reference": reference,
    }
    for role, frame in frames.items():
        path = out / folder / f"{role}.parquet"
        payload = write_parquet(frame.reset_index(drop=True), path)
        progress(STEP, f"wrote {path} rows={len(frame)} sha256={sha256_bytes(payload)}")
    progress(STEP, f"{folder} done in {time.perf_counter() - start:.2f}s")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.examples.example_data",
        description="Write NannyML's car-loan and car-price example data as parquet.",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="data store root (default: .kiln/data)"
    )
    parser.add_argument("--dataset", choices=[*DATASETS, "all"], default="all", help="default: all")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    folders = list(DATASETS) if args.dataset == "all" else [args.dataset]
    for folder in folders:
        write_dataset(folder, args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
