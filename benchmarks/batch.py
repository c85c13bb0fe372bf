"""Batch scoring throughput: `kiln predict` against onnxruntime called directly.

Both score the same rows (NannyML's car-loan analysis period, repeated to --rows) with
the example platform's ONNX model, one thread each on the same machine:

* `kiln predict` as a user runs it (the CLI in this process, so interpreter start-up is
  left out): digest check, column checks, chunked reading, casting, scoring and the
  committed parquet output, everything a batch job does;
* onnxruntime in process: the casts and one `session.run` per chunk of the same size on
  rows already in memory, no reading or writing: the floor.

Usage::

    .venv/bin/python benchmarks/batch.py [--rows 500000] [--chunk-rows 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

MODEL = ROOT / "specs" / "artifacts" / "models" / "car-loan-default" / "1" / "model.onnx"


def rows(count: int) -> object:
    import nannyml
    import pandas as pd

    analysis = nannyml.load_synthetic_car_loan_dataset()[1]
    analysis = analysis.drop(columns=["y_pred", "y_pred_proba"])
    copies = -(-count // len(analysis))
    return pd.concat([analysis] * copies, ignore_index=True).head(count)


def direct(frame: object, chunk: int) -> float:
    """Seconds for onnxruntime alone over the rows, chunk by chunk."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    started = time.perf_counter()
    for start in range(0, len(frame), chunk):  # type: ignore[arg-type]
        part = frame.iloc[start : start + chunk]  # type: ignore[attr-defined]
        feeds = {}
        for tensor in inputs:
            column = part[tensor.name]
            if tensor.type == "tensor(string)":
                values = column.astype(str).to_numpy(dtype=object)
            else:
                kind = np.float32 if tensor.type == "tensor(float)" else np.int64
                values = column.to_numpy().astype(kind)
            feeds[tensor.name] = values.reshape(-1, 1)
        session.run(["label", "probabilities"], feeds)
    return time.perf_counter() - started


def predict(source: Path, output: Path, chunk: int) -> float:
    """Seconds for `kiln predict` over the file, output committed."""
    from click.testing import CliRunner

    from compiler.cli import cli

    started = time.perf_counter()
    result = CliRunner().invoke(
        cli,
        [
            *("predict", "car-loan-default", "--specs", str(ROOT / "specs")),
            *("--input", str(source), "--output", str(output), "--chunk-rows", str(chunk)),
        ],
    )
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        raise SystemExit(f"kiln predict failed: {result.output}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    frame = rows(args.rows)
    with tempfile.TemporaryDirectory(prefix="kiln-bench-batch-") as folder:
        source = Path(folder) / "rows.parquet"
        frame.to_parquet(source, index=False)  # type: ignore[attr-defined]
        kiln = min(
            predict(source, Path(folder) / f"out-{i}.parquet", args.chunk_rows)
            for i in range(args.repeat)
        )
        floor = min(direct(frame, args.chunk_rows) for _ in range(args.repeat))
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"# {args.rows:,} rows, chunks of {args.chunk_rows:,}, best of {args.repeat}")
    print(f"{'path':<30} {'seconds':>8} {'rows/s':>12}")
    for name, seconds in (("kiln predict (end to end)", kiln), ("onnxruntime in process", floor)):
        print(f"{name:<30} {seconds:>8.2f} {args.rows / seconds:>12,.0f}")
    print(f"kiln predict / onnxruntime: {floor / kiln:.2f} of the floor's rate")


if __name__ == "__main__":
    main()
