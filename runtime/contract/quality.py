"""Rollouts judged on model quality: the words the compiler renders and the comparison step reads.

The step (`runtime/monitor/compare.py`) compares the new version's captured predictions
with the stable version's over one window and pushes what it measured to the Pushgateway;
the AnalysisTemplate's Prometheus metrics read those series (compiler/targets/quality.py).
Both sides take the metric names, the labels and the step's flags from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from runtime.contract.steps import Flag, StepCommand

ShiftDistance = Literal["jensen_shannon", "psi", "wasserstein", "ks"]
# Which distances fit which predictions: a classifier's scores or labels are compared as
# binned distributions; a regressor's values by the normalised Wasserstein distance or
# the two-sample Kolmogorov-Smirnov statistic.
CLASSIFIER_DISTANCES: tuple[ShiftDistance, ...] = ("jensen_shannon", "psi")
REGRESSION_DISTANCES: tuple[ShiftDistance, ...] = ("wasserstein", "ks")
DISTANCES: tuple[ShiftDistance, ...] = (*CLASSIFIER_DISTANCES, *REGRESSION_DISTANCES)


def distances_for(task: str) -> tuple[ShiftDistance, ...]:
    return REGRESSION_DISTANCES if task == "regression" else CLASSIFIER_DISTANCES


def default_distance(task: str) -> ShiftDistance:
    return distances_for(task)[0]


# The Pushgateway group of one comparison: job/<JOB>/model/<m>/environment/<e>/version/<n>.
PUSH_JOB = "kiln_rollout_quality"
# Series the step pushes (every one labelled model, environment, version):
ROWS = "kiln_rollout_quality_rows"  # the fewer of the two versions' rows in the window
MEASURED_AT = "kiln_rollout_quality_measured_timestamp_seconds"  # when the step ran
SHIFT = "kiln_rollout_prediction_shift"  # only with >= min rows on both sides
AGREEMENT = "kiln_rollout_prediction_agreement"  # shadow, joined rows only
MEAN_ABS_DIFFERENCE = "kiln_rollout_prediction_mean_abs_difference"  # shadow, joined rows

# Exit codes of the step: the Job provider knows only complete (0) and failed.
EXIT_MEASURED = 0  # measured (or too few rows, pushed as such): Prometheus decides
EXIT_FAILED = 1  # could not read the captured data or push: the measurement failed


COMPARE_PREDICTIONS = StepCommand(
    "runtime.monitor.compare",
    "Compare the new and stable versions' captured predictions over one window.",
    (
        Flag("--captured", "the model's captured/ folder (local or fsspec URL)", required=True),
        Flag("--model", "model name (a Pushgateway label)", required=True),
        Flag("--environment", "environment name", required=True),
        Flag("--version", "the new version, the one being rolled out", required=True, type=int),
        Flag("--task", "the model's task", required=True),
        Flag("--timestamp", "timestamp column", required=True),
        Flag("--prediction", "predicted label or value column", required=True),
        Flag("--score", "score columns, comma-separated (classifiers)"),
        Flag("--window", "seconds of captured traffic to compare", required=True, type=int),
        Flag("--min-rows", "rows per version before anything is measured", required=True, type=int),
        Flag("--distance", "prediction-shift distance", choices=DISTANCES),
        Flag("--shadow", "join by request id: agreement, mean abs difference", switch=True),
        Flag("--pushgateway", "Pushgateway base URL; absent: print only"),
        Flag("--now", "end of the window, ISO 8601 (tests)", hidden=True),
        Flag("--out", "also write the measurement as JSON here", type=Path, hidden=True),
    ),
)
