"""Compare the new version's captured predictions with the stable version's over one window.

Run by the rollout's AnalysisTemplate (`quality-measure`, compiler/targets/quality.py):

    python -m runtime.monitor.compare --captured s3://data/m/captured/ --model m \\
        --environment prod --version 7 --task binary_classification --timestamp ts \\
        --prediction y_pred --score y_pred_proba --window 300 --min-rows 500 \\
        --distance jensen_shannon --pushgateway http://pushgateway:9091

It reads the hours of `<captured>/environment=<env>/version=*/date=*/hour=*/` that the
window touches, keeps the rows whose timestamp lies in the window, and splits them by
`model_version`: the new version is `--version`, the stable one the other version with the
most rows. Canary, blue-green and A/B send each request to one version, so they are
compared as distributions (`--distance`); a shadow rollout mirrors the same requests to
both, joined by `request_id` (`--shadow`): the share with equal labels and the mean
absolute difference of the scores (of the values, for regression).

With fewer than `--min-rows` rows on a side (joined rows, for shadow) it pushes the count
alone: the AnalysisTemplate reads that as inconclusive. Exit 0 once the measurement is
pushed; 1 when the data cannot be read or the push fails.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from runtime.contract import capture
from runtime.contract import quality as contract
from runtime.contract.data_files import hidden_below
from runtime.monitor import distances
from runtime.monitor.output import Metrics, push_group

# The captured layout's columns (runtime/contract/capture.py).
REQUEST_ID = capture.REQUEST_ID
VERSION = capture.MODEL_VERSION


@dataclass
class Measurement:
    new_version: int
    stable_version: int | None
    new_rows: int
    stable_rows: int
    rows: int  # what min_rows is compared with: the fewer side, or the joined rows
    enough: bool
    values: dict[str, float] = field(default_factory=dict)  # contract series -> value


def _hours(start: datetime, end: datetime) -> list[str]:
    """`date=YYYY-MM-DD/hour=HH` of every hour the window touches."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    parts = []
    while hour <= end:
        parts.append(f"date={hour:%Y-%m-%d}/hour={hour:%H}")
        hour += timedelta(hours=1)
    return parts


def read_window(
    captured: str, environment: str, columns: list[str], start: datetime, end: datetime, ts: str
) -> pd.DataFrame:
    """The captured rows of `environment` with start < timestamp <= end."""
    import fsspec
    import pyarrow.parquet as pq

    fs, root = fsspec.core.url_to_fs(captured)
    base = f"{root.rstrip('/')}/environment={environment}"
    files = sorted(
        path
        for hour in _hours(start, end)
        for path in fs.glob(f"{base}/version=*/{hour}/*.parquet")
        if not hidden_below(path, base)  # a part the capture is still writing
    )
    wanted = [REQUEST_ID, ts, VERSION, *columns]
    frames = [pq.read_table(path, columns=wanted, filesystem=fs).to_pandas() for path in files]
    if not frames:
        return pd.DataFrame({name: [] for name in wanted})
    rows = pd.concat(frames, ignore_index=True)
    stamps = pd.to_datetime(rows[ts], utc=True)
    return rows[(stamps > start) & (stamps <= end)]


def _split(rows: pd.DataFrame, version: int) -> tuple[pd.DataFrame, pd.DataFrame, int | None]:
    new = rows[rows[VERSION] == version]
    others = rows[rows[VERSION] != version][VERSION].value_counts()
    if others.empty:
        return new, rows.iloc[0:0], None
    stable = int(others.index[0])  # the version that answered most of the rest
    return new, rows[rows[VERSION] == stable], stable


def _scored(task: str, prediction: str, scores: list[str]) -> list[str]:
    """The columns compared numerically: the scores of a classifier, else the value."""
    return [prediction] if task == "regression" or not scores else scores


def _shift(
    new: pd.DataFrame, stable: pd.DataFrame, task: str, prediction: str, scores: list[str], how: str
) -> float:
    if task == "regression":
        return distances.continuous(new[prediction], stable[prediction], how)
    if task == "binary_classification" and scores:
        return distances.scores(new[scores[0]], stable[scores[0]], how)
    return distances.categorical(new[prediction], stable[prediction], how)


def _shadow(
    new: pd.DataFrame, stable: pd.DataFrame, task: str, prediction: str, scores: list[str]
) -> tuple[int, dict[str, float]]:
    # One answer per request and version: a retried request must not count twice.
    joined = new.drop_duplicates(REQUEST_ID, keep="last").merge(
        stable.drop_duplicates(REQUEST_ID, keep="last"), on=REQUEST_ID, suffixes=("_n", "_s")
    )
    if joined.empty:
        return 0, {}
    compared = _scored(task, prediction, scores)
    gaps = np.column_stack(
        [
            np.abs(joined[f"{c}_n"].to_numpy(float) - joined[f"{c}_s"].to_numpy(float))
            for c in compared
        ]
    )
    values = {contract.MEAN_ABS_DIFFERENCE: float(gaps.mean())}
    if task != "regression":
        same = joined[f"{prediction}_n"].to_numpy() == joined[f"{prediction}_s"].to_numpy()
        values[contract.AGREEMENT] = float(same.mean())
    return len(joined), values


def measure(
    rows: pd.DataFrame,
    version: int,
    task: str,
    prediction: str,
    scores: list[str],
    min_rows: int,
    distance: str | None,
    shadow: bool,
) -> Measurement:
    new, stable, stable_version = _split(rows, version)
    result = Measurement(version, stable_version, len(new), len(stable), 0, False)
    values: dict[str, float] = {}
    if shadow:
        result.rows, values = _shadow(new, stable, task, prediction, scores)
    else:
        result.rows = min(len(new), len(stable))
    result.enough = result.rows >= min_rows and result.rows > 0
    if not result.enough:
        return result
    if distance is not None:
        values[contract.SHIFT] = _shift(new, stable, task, prediction, scores, distance)
    result.values = values
    return result


def exposition(result: Measurement, model: str, environment: str, now: datetime) -> str:
    """The Prometheus text the step pushes: the values only with enough rows."""
    labels = {"model": model, "environment": environment, "version": str(result.new_version)}
    metrics = Metrics(labels, prefix="")
    metrics.add(contract.ROWS, "Rows compared (the fewer version's, or joined).", result.rows)
    metrics.add(contract.MEASURED_AT, "When the comparison ran.", now.timestamp())
    helps = {
        contract.SHIFT: "Distance between the versions' prediction distributions.",
        contract.AGREEMENT: "Share of mirrored requests both versions label alike.",
        contract.MEAN_ABS_DIFFERENCE: "Mean absolute difference of the versions' scores.",
    }
    for series, value in sorted(result.values.items()):
        metrics.add(series, helps[series], value)
    return metrics.text()


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    args = contract.COMPARE_PREDICTIONS.parser().parse_args(argv)
    scores = [s for s in (args.score or "").split(",") if s]
    now = _now(args.now)
    start = now - timedelta(seconds=args.window)
    columns = sorted({args.prediction, *scores})
    try:
        rows = read_window(args.captured, args.environment, columns, start, now, args.timestamp)
        result = measure(
            rows,
            args.version,
            args.task,
            args.prediction,
            scores,
            args.min_rows,
            args.distance,
            args.shadow,
        )
        text = exposition(result, args.model, args.environment, now)
        if args.pushgateway:
            group = [("model", args.model), ("environment", args.environment)]
            group.append(("version", str(args.version)))
            push_group(args.pushgateway, contract.PUSH_JOB, group, text)
    except (OSError, ValueError, KeyError) as exc:
        print(
            f"compare: the measurement could not be taken: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return contract.EXIT_FAILED
    summary = json.dumps(asdict(result), sort_keys=True)
    print(summary)
    if args.out is not None:
        args.out.write_text(summary + "\n", encoding="utf-8")
    return contract.EXIT_MEASURED


if __name__ == "__main__":
    sys.exit(main())
