"""Tasks, metrics and signals: the words a spec, the pipeline steps and the monitor share."""

from __future__ import annotations

from typing import Literal

Task = Literal["binary_classification", "multiclass_classification", "regression"]
TASKS: tuple[Task, ...] = ("binary_classification", "multiclass_classification", "regression")

CLASSIFICATION_METRICS = (
    "accuracy",
    "average_precision",
    "f1",
    "precision",
    "recall",
    "roc_auc",
    "specificity",
)
REGRESSION_METRICS = ("mae", "mape", "mse", "msle", "r2", "rmse", "rmsle")
# Every other metric is better when lower (errors); r2 is the one regression score.
HIGHER_IS_BETTER = frozenset({*CLASSIFICATION_METRICS, "r2"})

# What NannyML's estimators can estimate before labels arrive.
CBPE_METRICS = ("roc_auc", "f1", "precision", "recall", "specificity", "accuracy")
DLE_METRICS = ("mae", "mape", "mse", "msle", "rmse", "rmsle")
ESTIMABLE = {"cbpe": frozenset(CBPE_METRICS), "dle": frozenset(DLE_METRICS)}

# Signals read from the serving metrics (Prometheus), not computed by the monitor job.
SERVING_SIGNALS = ("latency_p99_ms", "error_rate")


def task_metrics(task: str) -> tuple[str, ...]:
    """The metrics a model of `task` can be measured with."""
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
