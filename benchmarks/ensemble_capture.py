"""What capturing a declared ensemble costs on the local Triton: car-price-pipeline as
`kiln serve` runs it (its steps, then the capture step) against the same steps scheduled
by an ensemble without the capture step, both in one Triton (the two ensembles share
their user steps), batch 1, in alternating rounds; the throughput ratio and the p50 the
capture step adds, medians of the rounds.

Usage::

    .venv/bin/python benchmarks/ensemble_capture.py [--seconds 3] [--threads 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from serve import Call, Cell, load, render  # noqa: E402

from compiler.served import served_model  # noqa: E402
from compiler.targets import ensemble, triton  # noqa: E402
from runtime.local.ensemble import assemble_ensemble  # noqa: E402
from runtime.local.serve import (  # noqa: E402
    ADAPTER_FILES,
    TritonServer,
    choose_endpoints,
    prepare_runtime,
)
from runtime.local.triton_dist import default_cache  # noqa: E402
from runtime.serving.sample_data import load_sample, to_inputs  # noqa: E402
from runtime.serving.smoke import connect  # noqa: E402

MODEL = "car-price-pipeline"
UNCAPTURED = f"{MODEL}-no-capture"
CAPTURED, OFF = "ensemble with capture step", "ensemble without"


def _uncaptured_folder(repository: Path) -> None:
    """The same user steps scheduled without the capture step, under another name."""
    from compiler.served import model_ir

    ir, _ = model_ir(ROOT / "specs", MODEL, "local")
    assert ir.ensemble is not None
    config = ensemble.scheduled_config(
        dataclasses.replace(ir, capture=None), ir.ensemble.version, ir.ensemble.steps
    )
    config.name = UNCAPTURED
    folder = repository / UNCAPTURED
    (folder / str(ir.ensemble.version)).mkdir(parents=True)
    (folder / triton.CONFIG_FILE).write_text(triton.serialize(config), encoding="utf-8")


def measure(args: argparse.Namespace) -> list[Cell]:
    local = served_model(ROOT / "specs", MODEL, "local", ROOT / "generated")
    _, frame = load_sample([t.name for t in local.signature.inputs])
    arrays = to_inputs(frame, local.signature.inputs, 2000)
    dist, backend = prepare_runtime(default_cache())
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-ensemble-capture-") as folder:
        repository = Path(folder) / "repository"
        assemble_ensemble(dataclasses.replace(local, root=Path(folder)), repository, ADAPTER_FILES)
        _uncaptured_folder(repository)
        server = TritonServer(
            dist,
            backend,
            repository,
            [MODEL, UNCAPTURED],
            choose_endpoints(metrics_port=None),
            Path(folder) / "triton.log",
            project_root=Path(folder),  # the captured rows land in the temporary folder
        )
        server.start()
        try:
            server.wait_ready(120)
            for _ in range(args.rounds):
                for model, label in ((UNCAPTURED, OFF), (MODEL, CAPTURED)):

                    def remote(model: str = model) -> Call:
                        client = connect(server.endpoints.grpc, "grpc", timeout=30)
                        return lambda part: client.infer(model, "1", part, ["prediction"])

                    cells.append(load(label, remote, arrays, 1, args.threads, args.seconds))
        finally:
            server.stop()
    return cells


def summary(cells: Sequence[Cell], rounds: int) -> str:
    def median(label: str, of: str) -> float:
        chosen = [c for c in cells if c.target == label]
        if of == "rate":
            return float(np.median([c.requests / c.seconds for c in chosen]))
        return float(np.median([np.percentile(c.latencies_ms, 50) for c in chosen]))

    ratio = median(CAPTURED, "rate") / median(OFF, "rate")
    added = (median(CAPTURED, "p50") - median(OFF, "p50")) * 1000
    return (
        f"with capture / without: throughput {ratio:.3f}, p50 added {added:+.0f} us "
        f"(medians of {rounds} rounds)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="Measured time per cell.")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    cells = measure(args)
    print(f"{MODEL}: batch 1, {args.threads} gRPC clients, {args.seconds:.0f} s per row")
    print(render(cells))
    print(summary(cells, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
