"""Kiln's monitor job against the bare NannyML calls it makes, on the same data, in one run.

    .venv/bin/python benchmarks/monitor.py                 # 1,000,000 + 1,000,000 rows
    .venv/bin/python benchmarks/monitor.py --rows 100000   # a quick run
    .venv/bin/python benchmarks/monitor.py --domain-classifier   # add it (slow; row budget)

Data: NannyML's synthetic car-loan reference and analysis periods, resampled with
replacement to `--rows` rows each with a fixed seed, continuous features jittered by 1% of
their standard deviation, plus an eighth feature (`monthly_payment`, derived and jittered);
targets included in both periods. Files are written once per (rows, seed) under --data.

Each side runs in its own fresh Python process, so that its peak memory (ru_maxrss) is its
own and imports are paid by both:

- bare: pd.read_parquet of the needed columns, then fit + calculate/estimate of the same
  calculators with the same settings: univariate drift (jensen_shannon, chi2), data
  reconstruction, CBPE (roc_auc, f1), realised performance, missing and unseen values
  (+ the domain classifier on the same row budget when asked);
- kiln: `runtime.monitor.job.run_job` on the same files: reading and checking, the same
  calculators, Kiln's declared-range check, alert rules, results.json, parquet, metrics and
  the HTML report with every figure (delivery off: no network in a benchmark).

The sides alternate over --repeat rounds (bare first); the table reports the median.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable without installing Kiln
    sys.path.insert(0, str(ROOT))

CONTINUOUS = [
    "car_value",
    "debt_to_income_ratio",
    "loan_length",
    "driver_tenure",
    "monthly_payment",
]
CATEGORICAL = ["salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"]
FEATURES = CONTINUOUS + CATEGORICAL
COLUMNS = ["timestamp", *FEATURES, "y_pred_proba", "y_pred", "repaid"]
SEED = 20240501


# --- data -------------------------------------------------------------------------------------


def make_data(rows: int, folder: Path) -> tuple[Path, Path]:
    import numpy as np
    import pandas as pd

    from runtime.examples.monitor_examples import car_loan_frames

    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / f"reference-{rows}-{SEED}.parquet", folder / f"analysis-{rows}-{SEED}.parquet"
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(SEED)
    sources = car_loan_frames()
    start = pd.Timestamp("2018-01-01")
    step = pd.Timedelta(days=365) / rows
    for index, (source, path) in enumerate(zip(sources, paths, strict=True)):
        sample = source.iloc[rng.integers(0, len(source), rows)].reset_index(drop=True)
        sample["monthly_payment"] = sample["car_value"] / sample["loan_length"]
        for column in CONTINUOUS:
            spread = float(sample[column].std())
            sample[column] = sample[column] + rng.normal(0.0, 0.01 * spread, rows)
        sample["debt_to_income_ratio"] = sample["debt_to_income_ratio"].clip(0, 1)
        sample["car_value"] = sample["car_value"].clip(lower=0)
        sample["driver_tenure"] = sample["driver_tenure"].clip(lower=0)
        sample["loan_length"] = sample["loan_length"].clip(lower=1)
        first = start + pd.Timedelta(days=365 * index)
        sample["timestamp"] = first + step * np.arange(rows)
        sample[COLUMNS].to_parquet(path, index=False)
    return paths


def kiln_config(reference: Path, analysis: Path, chunk: int, domain: int | None) -> Any:
    from runtime.examples.monitor_examples import CAR_LOAN_FEATURES, car_loan_config

    features = [
        *CAR_LOAN_FEATURES,
        {"name": "monthly_payment", "dtype": "float64", "kind": "continuous", "range": {"min": 0}},
    ]
    multivariate: dict[str, Any] = {"method": "reconstruction_error"}
    if domain:
        multivariate = {"method": "domain_classifier", "max_rows": domain}
    return car_loan_config(
        columns={
            "timestamp": "timestamp",
            "prediction": "y_pred",
            "score": "y_pred_proba",
            "target": "repaid",
            "features": features,
        },
        reference={"uri": str(reference), "format": "parquet"},
        analysis={"uri": str(analysis), "format": "parquet"},
        chunking={"size": chunk},
        drift={
            "univariate": {"continuous": ["jensen_shannon"], "categorical": ["chi2"]},
            "multivariate": multivariate,
        },
        alerts=[
            {"name": "drift", "signal": "drift", "severity": "warning", "route": "hook"},
            {
                "name": "auc",
                "signal": "estimated_performance",
                "metric": "roc_auc",
                "below": 0.9,
                "severity": "critical",
                "route": "hook",
            },
        ],
        routes=[{"name": "hook", "webhook": {"url": "http://127.0.0.1:9/"}}],
    )


# --- the two sides (each in its own process) ----------------------------------------------------


def run_bare(reference: Path, analysis: Path, chunk: int, domain: int | None) -> dict[str, float]:
    import nannyml as nml
    import pandas as pd

    stages: dict[str, float] = {}
    clock = time.perf_counter()
    ref = pd.read_parquet(reference, columns=COLUMNS)
    ana = pd.read_parquet(analysis, columns=COLUMNS)
    stages["load"] = time.perf_counter() - clock
    common = {"timestamp_column_name": "timestamp", "chunk_size": chunk}
    perf = {
        "y_pred_proba": "y_pred_proba",
        "y_pred": "y_pred",
        "y_true": "repaid",
        "problem_type": "classification_binary",
        "metrics": ["roc_auc", "f1"],
    }
    calculators: dict[str, Any] = {
        "univariate_drift": nml.UnivariateDriftCalculator(
            column_names=FEATURES,
            treat_as_numerical=CONTINUOUS,
            treat_as_categorical=CATEGORICAL,
            continuous_methods=["jensen_shannon"],
            categorical_methods=["chi2"],
            **common,
        ),
        "estimated_performance": nml.CBPE(**perf, **common),
        "realized_performance": nml.PerformanceCalculator(**perf, **common),
        "missing_values": nml.MissingValuesCalculator(column_names=FEATURES, **common),
        "unseen_values": nml.UnseenValuesCalculator(column_names=CATEGORICAL, **common),
    }
    if domain:
        # the same row budget as Kiln's; bare NannyML has no chunk-preserving sampler, so
        # this side samples each data set uniformly (cheaper than Kiln's, if anything)
        calculators["multivariate_drift"] = nml.DomainClassifierCalculator(
            feature_column_names=FEATURES,
            treat_as_categorical=CATEGORICAL,
            timestamp_column_name="timestamp",
            chunk_size=max(1, chunk * domain // len(ana)),
        )
    else:
        calculators["multivariate_drift"] = nml.DataReconstructionDriftCalculator(
            column_names=FEATURES, **common
        )
    results = {}
    for name, calc in calculators.items():
        clock = time.perf_counter()
        if name == "multivariate_drift" and domain:
            small_ref = ref.sample(n=min(domain, len(ref)), random_state=0).sort_index()
            small_ana = ana.sample(n=min(domain, len(ana)), random_state=0).sort_index()
            results[name] = calc.fit(small_ref).calculate(small_ana)
        elif name == "estimated_performance":
            results[name] = calc.fit(ref).estimate(ana)
        else:
            results[name] = calc.fit(ref).calculate(ana)
        stages[name] = time.perf_counter() - clock
    return stages


def run_kiln(reference: Path, analysis: Path, chunk: int, domain: int | None) -> dict[str, float]:
    from runtime.monitor.job import Progress, run_job

    out = Path(os.environ.get("KILN_BENCH_OUT", "/tmp/kiln-monitor-bench"))
    config = kiln_config(reference, analysis, chunk, domain)
    clock = time.perf_counter()
    run = run_job(config, out, progress=Progress(None), deliver=False)
    total = time.perf_counter() - clock
    if run.exit_code != 0 and run.status != "alerts":
        raise SystemExit(f"kiln run failed: {run.error or [o.message for o in run.outcomes]}")
    stages = {o.name: o.seconds for o in run.outcomes}
    stages.update({f"{o.name} (figure)": o.plot_seconds for o in run.outcomes})
    stages["load and check"] = run.load_seconds
    stages["outputs"] = run.output_seconds
    stages["total_in_job"] = total
    return stages


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(side: str, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    import nannyml  # noqa: F401 - both sides pay the same import before the clock

    imported = time.perf_counter()
    cpu_before = _cpu()
    run = run_bare if side == "bare" else run_kiln
    stages = run(Path(args.reference), Path(args.analysis), args.chunk_size, args.domain_rows)
    finished = time.perf_counter()
    cpu = _cpu() - cpu_before
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "side": side,
                "import_seconds": imported - started,
                "seconds": finished - imported,
                "cpu_seconds": cpu,
                "peak_rss_mib": peak_kib / 1024,
                "stages": stages,
            }
        )
    )


# --- driver -----------------------------------------------------------------------------------


def _spawn(side: str, reference: Path, analysis: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--worker",
        side,
        "--reference",
        str(reference),
        "--analysis",
        str(analysis),
        "--chunk-size",
        str(args.chunk_size),
    ]
    if args.domain_classifier:
        command += ["--domain-rows", str(args.domain_rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} worker failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Rows per data set.")
    parser.add_argument("--chunk-size", type=int, default=None, help="Rows per chunk (rows/20).")
    parser.add_argument("--repeat", type=int, default=1, help="Rounds of bare + kiln.")
    parser.add_argument("--data", type=Path, default=Path("/tmp/kiln-monitor-bench-data"))
    parser.add_argument("--domain-classifier", action="store_true", help="Add the DC (slow).")
    parser.add_argument("--domain-rows", type=int, default=None, help="DC row budget (100000).")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--worker", choices=["bare", "kiln"], help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--analysis", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args)
        return 0
    if args.domain_classifier:
        args.domain_rows = args.domain_rows or 100_000
    args.chunk_size = args.chunk_size or max(1, args.rows // 20)
    clock = time.perf_counter()
    reference, analysis = make_data(args.rows, args.data)
    print(
        f"data: {args.rows:,} + {args.rows:,} rows, 8 features, chunks of "
        f"{args.chunk_size:,} ({time.perf_counter() - clock:.1f} s to prepare)",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "kiln": []}
    for round_ in range(args.repeat):
        for side in ("bare", "kiln"):
            result = _spawn(side, reference, analysis, args)
            runs[side].append(result)
            print(
                f"round {round_ + 1} {side:<4}: {result['seconds']:7.1f} s wall, "
                f"{result['cpu_seconds']:7.1f} s CPU, peak {result['peak_rss_mib']:7.0f} MiB",
                flush=True,
            )

    def stat(rs: list[dict[str, Any]], key: str, pick: Any) -> float:
        return float(pick(r[key] for r in rs))

    summary = {
        side: {
            "seconds": stat(rs, "seconds", statistics.median),
            "seconds_min": stat(rs, "seconds", min),
            "cpu_seconds": stat(rs, "cpu_seconds", statistics.median),
            "cpu_seconds_min": stat(rs, "cpu_seconds", min),
            "peak_rss_mib": stat(rs, "peak_rss_mib", statistics.median),
        }
        for side, rs in runs.items()
    }
    bare, kiln = summary["bare"], summary["kiln"]
    rounds = f"{args.repeat} round(s)"
    print()
    print(f"| {rounds} | wall s (median) | wall s (min) | CPU s (median) | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, figures in (("bare NannyML calls", bare), ("Kiln monitor job", kiln)):
        print(
            f"| {label} | {figures['seconds']:.1f} | {figures['seconds_min']:.1f} | "
            f"{figures['cpu_seconds']:.1f} | {figures['peak_rss_mib']:.0f} |"
        )
    print(
        f"| Kiln overhead | {kiln['seconds'] / bare['seconds'] - 1:+.1%} | "
        f"{kiln['seconds_min'] / bare['seconds_min'] - 1:+.1%} | "
        f"{kiln['cpu_seconds'] / bare['cpu_seconds'] - 1:+.1%} | "
        f"{kiln['peak_rss_mib'] / bare['peak_rss_mib'] - 1:+.1%} |"
    )
    print()
    print("per calculator (s, median):")
    names = sorted(
        {k for r in runs["kiln"] for k in r["stages"]}
        | {k for r in runs["bare"] for k in r["stages"]}
    )
    for name in names:
        values = {
            side: statistics.median(r["stages"].get(name, float("nan")) for r in rs)
            for side, rs in runs.items()
        }
        print(f"  {name:<24} bare {values['bare']:8.2f}   kiln {values['kiln']:8.2f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rows": args.rows, "runs": runs, "summary": summary}, indent=2, sort_keys=True
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
