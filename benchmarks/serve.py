"""Serving throughput and latency through the local Triton, next to onnxruntime in-process.

One run, printed as a table: requests/s, rows/s and p50/p99 latency at batch 1 and 64,
for a concurrent client load (8 threads by default, each with its own client, on
loopback, bounded in time), through

* Triton with the model's compiled config (dynamic batching, as the spec says),
* Triton with the same config without `dynamic_batching`,
* onnxruntime in-process (one session, the same threads), the floor for both.

With `--capture`, instead: the model with serving.capture on (sample 1.0) against the
same model with capture off, and against the cluster's mechanism, an ensemble of the
model step and the capture step (tests/capture_ensemble.py), all in one Triton, at
batch 1, measured in alternating rounds; it prints each mechanism's throughput ratio
to capture off (the acceptance floor is 0.90) and the p50 it adds.

Usage::

    .venv/bin/python benchmarks/serve.py [--model car-loan-default] [--seconds 3]
        [--threads 8] [--protocol grpc|http] [--batch 1 --batch 64] [--capture [--rounds 5]]

With `--per-format`, one Triton serves a model of each format the local Triton runs
(ONNX and LightGBM from the example platform, XGBoost and python from the formats
golden tree) and the table has a row per format and batch size, next to the format's
library in process (benchmarks/serve_formats.py).

The first run downloads tritonserver and builds the backend venv (see docs/local.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.ir import ModelIR  # noqa: E402
from compiler.served import artifact_sources, model_ir  # noqa: E402
from compiler.targets import serving, triton  # noqa: E402
from runtime.contract.served import ServedModel  # noqa: E402
from runtime.local.serve import (  # noqa: E402
    TritonServer,
    assemble_local,
    choose_endpoints,
    prepare_runtime,
)
from runtime.local.triton_dist import default_cache  # noqa: E402
from runtime.serving.sample_data import load_sample, take, to_inputs  # noqa: E402
from runtime.serving.smoke import connect, reference_session, run_reference  # noqa: E402
from tests.capture_ensemble import capture_ensemble  # noqa: E402

UNBATCHED_SUFFIX = "-no-dynamic-batching"
UNCAPTURED_SUFFIX = "-no-capture"
ENSEMBLE_SUFFIX = "-ensemble"
# The three mechanisms --capture compares, by the label each row carries.
CAPTURE_OFF, IN_ADAPTER, IN_ENSEMBLE = "capture off", "capture in adapter", "capture ensemble"


@dataclass
class Cell:
    target: str
    batch: int
    threads: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    server_batch: float | None = None  # rows per model execution, from Triton's statistics

    def row(self) -> list[str]:
        values = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        per_s = self.requests / self.seconds
        return [
            self.target,
            str(self.batch),
            str(self.threads),
            f"{per_s:,.0f}",
            f"{per_s * self.batch:,.0f}",
            f"{np.percentile(values, 50):.2f}",
            f"{np.percentile(values, 99):.2f}",
            "-" if self.server_batch is None else f"{self.server_batch:.1f}",
        ]


Call = Callable[[dict[str, np.ndarray]], object]


def load(
    name: str,
    make_call: Callable[[], Call],
    arrays: dict[str, np.ndarray],
    batch: int,
    threads: int,
    seconds: float,
) -> Cell:
    """`threads` workers (each with its own `make_call()`) call as fast as they can for
    `seconds`, after a short warm-up."""
    rows = len(next(iter(arrays.values())))
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    start_gate = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        own = make_call()
        offset = (index * 97) % max(rows - batch, 1)
        part = take(arrays, offset, offset + batch)
        try:
            for _ in range(3):
                own(part)  # warm-up: connections, first-run allocations
        except Exception as exc:
            errors.append(repr(exc))
        start_gate.wait()
        timings = latencies[index]
        while not errors:
            began = time.perf_counter()
            if began >= stop_at[0]:
                break
            try:
                own(part)
            except Exception as exc:
                errors.append(repr(exc))
                break
            timings.append((time.perf_counter() - began) * 1000.0)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    stop_at[0] = time.perf_counter() + 3600  # set properly once everyone is warm
    start_gate.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in workers:
        thread.join(timeout=seconds + 60)
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{name}: {errors[0]}")
    flat = [t for per in latencies for t in per]
    return Cell(name, batch, threads, len(flat), elapsed, flat)


def _counts(server: TritonServer, model: str) -> tuple[int, int]:
    """(rows inferred, model executions) so far, from Triton's statistics extension."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.endpoints.http)
    try:
        stats = client.get_inference_statistics(model, "1")["model_stats"][0]
    finally:
        client.close()
    return int(stats["inference_count"]), int(stats["execution_count"])


def render(cells: Sequence[Cell]) -> str:
    header = [
        "target",
        "batch",
        "threads",
        "requests/s",
        "rows/s",
        "p50 ms",
        "p99 ms",
        "rows/execution",
    ]
    table = [header, *(c.row() for c in cells)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for index, row in enumerate(table):
        cells_text = [
            v.ljust(widths[i]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(row)
        ]
        lines.append("| " + " | ".join(cells_text) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def capture_cost(
    ir: ModelIR, local: ServedModel, arrays: dict[str, np.ndarray], args: argparse.Namespace
) -> list[Cell]:
    """Capture in the adapter, in an ensemble step, and off: batch 1, in alternating
    rounds on one server."""
    from runtime.contract.capture import PARAMETER

    uncaptured = triton.parse(local.config_text)
    uncaptured.parameters.pop(PARAMETER)
    uncaptured.name = local.name + UNCAPTURED_SUFFIX
    names = [o.name for o in uncaptured.output]
    dist, backend = prepare_runtime(default_cache())
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-capture-") as folder:
        repository = Path(folder) / "repository"
        assemble_local(local, repository)
        plain = dataclasses.replace(
            local, name=uncaptured.name, config_text=triton.serialize(uncaptured)
        )
        assemble_local(plain, repository)
        libraries = Path(folder) / "libraries"  # pyarrow comes from the backend venv here
        libraries.mkdir()
        ensemble = dataclasses.replace(ir, name=ir.name + ENSEMBLE_SUFFIX)
        capture_ensemble(ensemble, local.artifacts[0], repository, libraries)
        server = TritonServer(
            dist,
            backend,
            repository,
            [local.name, uncaptured.name, ensemble.name],
            choose_endpoints(metrics_port=None),
            Path(folder) / "triton.log",
            project_root=Path(folder),  # the captured rows land in the temporary folder
        )
        server.start()
        try:
            server.wait_ready(120)
            url = server.endpoints.grpc if args.protocol == "grpc" else server.endpoints.http
            for _ in range(args.rounds):
                for model, label in (
                    (uncaptured.name, CAPTURE_OFF),
                    (local.name, IN_ADAPTER),
                    (ensemble.name, IN_ENSEMBLE),
                ):

                    def remote(model: str = model) -> Call:
                        client = connect(url, args.protocol, timeout=30)
                        return lambda part: client.infer(model, "1", part, names)

                    cells.append(load(label, remote, arrays, 1, args.threads, args.seconds))
        finally:
            server.stop()
    return cells


def capture_summary(cells: Sequence[Cell], rounds: int) -> str:
    def median(label: str, value: Callable[[Cell], float]) -> float:
        return float(np.median([value(c) for c in cells if c.target == label]))

    rate = lambda c: c.requests / c.seconds  # noqa: E731
    p50 = lambda c: float(np.percentile(c.latencies_ms, 50))  # noqa: E731
    lines = []
    for label in (IN_ADAPTER, IN_ENSEMBLE):
        ratio = median(label, rate) / median(CAPTURE_OFF, rate)
        added = median(label, p50) - median(CAPTURE_OFF, p50)
        verdict = "meets" if ratio >= 0.90 else "MISSES"
        lines.append(
            f"{label} / capture off throughput: {ratio:.3f} ({verdict} the 0.90 floor); "
            f"p50 added: {added * 1000:+.0f} us (medians of {rounds} rounds)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="car-loan-default")
    parser.add_argument("--specs", type=Path, default=ROOT / "specs")
    parser.add_argument("--seconds", type=float, default=3.0, help="Measured time per cell.")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    parser.add_argument("--batch", type=int, action="append", help="Batch sizes [1, 64].")
    parser.add_argument(
        "--capture", action="store_true", help="Capture on against off, batch 1, and stop."
    )
    parser.add_argument("--rounds", type=int, default=5, help="Alternating rounds (--capture).")
    parser.add_argument("--per-format", action="store_true", help="A row per model format.")
    args = parser.parse_args(argv)
    batches = args.batch or [1, 64]
    if args.per_format:
        from serve_formats import per_format

        return per_format(args.seconds, args.threads, args.protocol, batches)

    ir, root = model_ir(args.specs, args.model, "local")
    if max(batches) > ir.serving.max_batch_size:
        parser.error(f"{args.model} takes batches of at most {ir.serving.max_batch_size}")
    config = triton.build_config(ir)
    local = ServedModel(
        ir.name,
        "local",
        serving.signature(ir),
        artifact_sources(ir, root),
        triton.serialize(config),
        Path("(built in memory)"),
        root,
    )
    unbatched = triton.build_config(ir)
    unbatched.ClearField("dynamic_batching")
    unbatched.name = ir.name + UNBATCHED_SUFFIX
    _, frame = load_sample([t.name for t in ir.inputs])
    arrays = to_inputs(frame, ir.inputs, 2000)
    names = [t.name for t in ir.outputs]
    if args.capture:
        if ir.capture is None:
            parser.error(f"{args.model} does not capture in the local environment")
        measured = capture_cost(ir, local, arrays, args)
        print(
            f"{args.model}: batch 1, {args.threads} clients ({args.protocol}), "
            f"{args.seconds:.0f} s per row, sample {ir.capture.sample}"
        )
        print(render(measured))
        print(capture_summary(measured, args.rounds))
        return 0

    started = time.perf_counter()
    dist, backend = prepare_runtime(default_cache())
    prepared_s = time.perf_counter() - started
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as folder:
        repository = Path(folder) / "repository"
        assemble_local(local, repository)
        second = dataclasses.replace(
            local, name=unbatched.name, config_text=triton.serialize(unbatched)
        )
        assemble_local(second, repository)
        models = [ir.name, unbatched.name]
        server = TritonServer(
            dist,
            backend,
            repository,
            models,
            choose_endpoints(metrics_port=None),
            Path(folder) / "triton.log",
        )
        server.start()
        try:
            ready_s = server.wait_ready(120)
            url = server.endpoints.grpc if args.protocol == "grpc" else server.endpoints.http
            session = reference_session(ROOT / ir.served[0].uri)

            def in_process() -> Call:
                return lambda part: run_reference(session, part, names)

            for batch in batches:
                for model, label in (
                    (ir.name, "triton, dynamic batching"),
                    (unbatched.name, "triton, no dynamic batching"),
                ):

                    def remote(model: str = model) -> Call:
                        client = connect(url, args.protocol, timeout=30)
                        return lambda part: client.infer(model, "1", part, names)

                    before = _counts(server, model)
                    cell = load(label, remote, arrays, batch, args.threads, args.seconds)
                    inferences, executions = np.subtract(_counts(server, model), before)
                    cell.server_batch = inferences / max(executions, 1)
                    cells.append(cell)
                for threads in (args.threads, 1):
                    cells.append(
                        load(
                            "onnxruntime in-process",
                            in_process,
                            arrays,
                            batch,
                            threads,
                            args.seconds,
                        )
                    )
        finally:
            server.stop()

    instances = sum(g.count for g in config.instance_group)
    print(
        f"{args.model}: {instances} CPU model instance(s), python backend + onnxruntime "
        f"(1 intra-op thread each), max_batch_size {ir.serving.max_batch_size}, queue delay "
        f"{config.dynamic_batching.max_queue_delay_microseconds} us; client {args.protocol} "
        f"on loopback; {args.seconds:.0f} s per row"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), Python "
        f"{platform.python_version()}; tritonserver + backend env ready in {prepared_s:.1f} s "
        f"(cached), server ready in {ready_s:.1f} s"
    )
    print(render(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
