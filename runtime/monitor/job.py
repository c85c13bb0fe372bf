"""The monitoring job: NannyML on a model's reference and analysis data, alert rules, delivery.

    python -m runtime.monitor --config monitor.json [--reference F] [--analysis F] --out DIR

Reads the data (parquet or CSV, local or any fsspec store, the analysis cut to its lookback
window), checks the declared columns, runs the configured NannyML calculators, evaluates the
alert rules, delivers the events, and writes to DIR:

- results.json        everything, schema `kiln.monitor.results/v1` (docs/monitoring.md)
- <calculator>.parquet one tidy table per calculator, reference and analysis chunks
- metrics.prom        Prometheus text exposition (also pushed with --pushgateway)
- report.html         a self-contained report for people

Exit codes: 0 the job ran (alerts may have fired); 1 data, a calculator or a delivery
failed (the outputs say which and why); 2 usage errors and internal failures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from runtime.contract.monitor_config import MonitorConfig, load_config
from runtime.monitor.data import Dataset, MonitorError

# Before anything imports nannyml: it sends usage telemetry unless told not to.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"


def _cgroup_cpus() -> float | None:
    """CPUs this container may use by its CFS quota (cgroup v2, then v1); None without one."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text().strip()
        period = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
        return None if int(quota) <= 0 else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def cap_threads() -> None:
    """LightGBM (DLE, domain classifier) uses one OpenMP thread per host CPU, not per CPU the
    pod may use: under a CPU limit that thrashes (ten times slower measured on small fits).
    Cap OpenMP at the quota unless OMP_NUM_THREADS is set; it must happen before import."""
    cpus = _cgroup_cpus()
    if "OMP_NUM_THREADS" not in os.environ and cpus and cpus < (os.cpu_count() or 1):
        os.environ["OMP_NUM_THREADS"] = str(max(1, int(cpus)))


cap_threads()

if TYPE_CHECKING:
    from runtime.monitor.output import Run
    from runtime.monitor.tidy import Context, Outcome

PREFIX = "[kiln monitor]"


class Progress:
    """One line per step with its timing, flushed, so that long runs show where they are.

    On stderr by default (looked up when writing); `Progress(None)` is silent.
    """

    def __init__(self, stream: TextIO | str | None = "stderr") -> None:
        self.stream = stream

    def line(self, step: str, status: str, seconds: float | None, detail: str = "") -> None:
        stream = sys.stderr if self.stream == "stderr" else self.stream
        if stream is None or isinstance(stream, str):
            return
        took = f"{seconds:8.2f} s" if seconds is not None else " " * 10
        stream.write(f"{PREFIX} {step:<22} {status:<7} {took}  {detail}".rstrip() + "\n")
        stream.flush()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("kiln", "nannyml", "pandas", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


def _load(config: MonitorConfig, role: str, override: str | None, progress: Progress) -> Dataset:
    from runtime.monitor.data import load_dataset

    source = config.reference if role == "reference" else config.analysis
    started = time.perf_counter()
    data = load_dataset(config, role, source, override)  # type: ignore[arg-type]
    detail = f"{data.rows} rows from {data.uri}"
    if data.rows != data.rows_read:
        detail += f" (lookback {source.lookback} kept {data.rows} of {data.rows_read})"
    progress.line(role, "ok", time.perf_counter() - started, detail)
    return data


def run_job(
    config: MonitorConfig,
    out: Path,
    reference: str | None = None,
    analysis: str | None = None,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    pushgateway: str | None = None,
    deliver: bool = True,
    local_sink: bool = False,
) -> Run:
    """The whole job; never raises for data, calculator or delivery failures (see Run).
    With `local_sink` the events go to out/alerts.jsonl instead of their routes."""
    from runtime.monitor.output import Run

    progress = progress or Progress()
    run = Run(config, time.time(), versions=_versions())
    out.mkdir(parents=True, exist_ok=True)
    try:
        context = _load_and_chunk(run, reference, analysis, progress)
        _calculate(run, context, progress)
        if local_sink:
            _record_locally(run, out, progress)
        elif deliver:
            _deliver(run, environ, sleep, progress)
        else:
            progress.line("delivery", "skipped", None, "delivery turned off")
    except MonitorError as exc:
        run.error = {"stage": exc.stage, "message": exc.message}
        progress.line(exc.stage, "failed", None, exc.message)
    _write_outputs(run, out, pushgateway or config.pushgateway, progress)
    progress.line("done", f"exit {run.exit_code}", run.finished - run.started, run.status)
    return run


def _load_and_chunk(
    run: Run, reference: str | None, analysis: str | None, progress: Progress
) -> Context:
    """Read both data sets and cut them into chunks (MonitorError when they cannot be)."""
    from runtime.monitor import chunks
    from runtime.monitor.tidy import Context

    config = run.config
    started = time.perf_counter()
    run.reference = _load(config, "reference", reference, progress)
    run.analysis = _load(config, "analysis", analysis, progress)
    ref_chunks, ref_order = chunks.split_chunks(config, run.reference.frame, "reference")
    chunks.check_reference_chunks(config, ref_chunks)
    run.chunks, order = chunks.split_chunks(config, run.analysis.frame, "analysis")
    run.load_seconds = time.perf_counter() - started
    progress.line(
        "chunks",
        "ok",
        None,
        f"{len(run.chunks)} analysis, {len(ref_chunks)} reference "
        f"({chunks.describe_chunking(config)})",
    )
    frames = (run.reference.frame, run.analysis.frame)
    return Context(config, *frames, ref_chunks, run.chunks, (ref_order, order))


def _calculate(run: Run, context: Context, progress: Progress) -> None:
    """Run the calculators, then the alert rules on their results."""
    from runtime.monitor import calc as monitor_calc
    from runtime.monitor import rules as monitor_rules

    def report(o: Outcome) -> None:
        detail = o.message if o.status != "ok" else o.detail
        progress.line(o.name, o.status, o.seconds, detail or "")

    run.outcomes = monitor_calc.run_calculators(context, report)
    run.events = monitor_rules.evaluate(run.config, run.tables())
    per_rule: dict[str, int] = {}
    for event in run.events:
        per_rule[event.name] = per_rule.get(event.name, 0) + 1
    progress.line(
        "alerts",
        "ok",
        None,
        f"{len(run.events)} event(s)"
        + "".join(f", {name}: {n}" for name, n in sorted(per_rule.items())),
    )


def _deliver(
    run: Run,
    environ: Mapping[str, str] | None,
    sleep: Callable[[float], None],
    progress: Progress,
) -> None:
    """Send the events to their routes; each delivery's outcome is one progress line."""
    from runtime.monitor import alerts

    started = time.perf_counter()
    run.deliveries = alerts.deliver(run.config, run.events, environ=environ, sleep=sleep)
    for d in run.deliveries:
        detail = f"{d.route} ({d.kind}): {d.events} event(s), {d.attempts} attempt(s)"
        progress.line(
            "delivery",
            "ok" if d.ok else "failed",
            time.perf_counter() - started,
            detail + ("" if d.ok else f": {d.error}"),
        )


def _record_locally(run: Run, out: Path, progress: Progress) -> None:
    from runtime.monitor import local_sink

    started = time.perf_counter()
    record = local_sink.record(run.events, out)
    run.deliveries = [record]
    detail = f"local sink: {record.events} event(s) in {record.target}"
    progress.line("delivery", "ok", time.perf_counter() - started, detail)


def _write_outputs(run: Run, out: Path, pushgateway: str | None, progress: Progress) -> None:
    """Write every output, whatever happened before; push the metrics where asked."""
    from runtime.monitor.output import push_metrics, write_metrics, write_results, write_tables
    from runtime.monitor.report import write_report

    started = time.perf_counter()
    run.finished = time.time()
    write_tables(run, out)
    write_results(run, out)
    _, metrics_text = write_metrics(run, out)
    write_report(run, out)
    run.output_seconds = time.perf_counter() - started
    progress.line("outputs", "written", run.output_seconds, str(out))
    if pushgateway:
        try:
            push_metrics(pushgateway, run.config, metrics_text)
        except OSError as exc:  # monitoring of the monitor is best effort
            progress.line("pushgateway", "failed", None, f"{pushgateway}: {exc}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.monitor",
        description="Run Kiln's NannyML monitoring job for one model and environment.",
    )
    parser.add_argument("--config", required=True, type=Path, help="Monitor config (JSON).")
    parser.add_argument("--reference", help="Reference data (overrides the config's URI).")
    parser.add_argument("--analysis", help="Analysis data (overrides the config's URI).")
    parser.add_argument("--out", required=True, type=Path, help="Output folder.")
    parser.add_argument("--pushgateway", help="Prometheus Pushgateway base URL.")
    parser.add_argument("--quiet", action="store_true", help="No progress lines.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except Exception as exc:  # unreadable or invalid config: a usage error
        print(f"kiln monitor: invalid config {args.config}: {exc}", file=sys.stderr)
        return 2
    try:
        run = run_job(
            config,
            args.out,
            reference=args.reference,
            analysis=args.analysis,
            progress=Progress(None if args.quiet else sys.stderr),
            pushgateway=args.pushgateway,
        )
    except Exception:
        traceback.print_exc()
        print("kiln monitor: internal error (a bug in Kiln); please report it", file=sys.stderr)
        return 2
    return run.exit_code


if __name__ == "__main__":
    sys.exit(main())
