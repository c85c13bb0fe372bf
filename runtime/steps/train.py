"""The train step of Kiln's built-in trainer (`training.trainer` in a Model spec).

    python -m runtime.steps.train --trainer JSON --task TASK --features JSON \\
        [--classes JSON] --name MODEL

It reads the same KILN_* variables a user's own training command reads (TRAIN_ENV, see
docs/pipelines.md): the features step's parquet, its digest, the seed, the held-out share,
the target and timestamp columns and the output folder. It trains on the oldest
(1 - holdout) share of the rows, the split the evaluate step uses, writes model.onnx, and
fails unless onnxruntime reproduces the library's predictions on the held-out rows: the
same labels, and probabilities or predictions within PARITY_RTOL of the library's.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from runtime.contract.signature import Tensor
from runtime.contract.steps import TRAIN, TRAIN_ENV
from runtime.contract.trainers import (
    CLASSIFICATION,
    Estimator,
    find_estimator,
    task_family,
)
from runtime.steps.pipeline_io import (
    StepError,
    feeds,
    json_argument,
    progress,
    read_parquet,
    require_columns,
    run_main,
    sha256_bytes,
    sha256_file,
    split_by_time,
    write_atomic,
)
from runtime.steps.trainer_graph import FeatureColumn, build_model, to_onnx

# ONNX against the library on the held-out rows, relative to the output's scale (at least
# 1): both evaluate the same trees or weights, in float32 in the graph and in float64 (or
# float32) in the library, so only the order and width of the sums differ.
PARITY_RTOL = 1e-5


@dataclass(frozen=True)
class TrainSettings:
    """One run: the trainer's settings from flags, the data's from KILN_* variables."""

    estimator: Estimator
    params: dict[str, Any]
    task: str
    features: tuple[FeatureColumn, ...]
    classes: tuple[str, ...] | None
    name: str
    data: Path
    data_sha256: str | None
    seed: int
    holdout: float
    target: str
    timestamp: str
    output_dir: Path


def _variable(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, "").strip() or default
    if value is None:
        raise StepError(f"{name} is not set; the pipeline's train step sets it")
    return value


def _number(name: str, default: str, kind: type[int] | type[float]) -> Any:
    text = _variable(name, default)
    try:
        return kind(text)
    except ValueError as error:
        raise StepError(f"{name} must be a number, got {text!r}") from error


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return TRAIN.parser().parse_args(argv)


def settings_from(argv: Sequence[str] | None) -> TrainSettings:
    args = parse_args(argv)
    trainer = json_argument(args.trainer, "--trainer")
    estimator = find_estimator(str(trainer.get("library")), str(trainer.get("estimator")))
    if estimator is None or task_family(args.task) not in estimator.classes:
        raise StepError(f"--trainer: no {args.task} estimator {trainer!r} in Kiln's table")
    features = tuple(
        FeatureColumn(f["name"], f["dtype"], f["kind"])
        for f in json_argument(args.features, "--features")
    )
    classes = None if args.classes is None else json_argument(args.classes, "--classes")
    seed = _number(TRAIN_ENV.seed, "0", int)
    if not 0 <= seed < 2**32:  # the range every library takes as a random state
        raise StepError(f"{TRAIN_ENV.seed} must be in [0, 2**32), got {seed}")
    return TrainSettings(
        estimator=estimator,
        params=dict(trainer.get("params") or {}),
        task=args.task,
        features=features,
        classes=None if classes is None else tuple(str(c) for c in classes),
        name=args.name,
        data=Path(_variable(TRAIN_ENV.data)),
        data_sha256=os.environ.get(TRAIN_ENV.data_sha256, "").strip() or None,
        seed=seed,
        holdout=_number(TRAIN_ENV.holdout, "0.2", float),
        target=_variable(TRAIN_ENV.target),
        timestamp=_variable(TRAIN_ENV.timestamp, "timestamp"),
        output_dir=Path(_variable(TRAIN_ENV.output_dir)),
    )


# -------------------------------------------------------------------------------- data


def read_rows(settings: TrainSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) rows of the features parquet, its digest checked first."""
    if not settings.data.is_file():
        raise StepError(f"{TRAIN_ENV.data}: no such file: {settings.data}")
    expected = settings.data_sha256
    if expected is not None and sha256_file(settings.data) != expected.lower():
        raise StepError(f"{settings.data} does not have the sha256 {TRAIN_ENV.data_sha256} says")
    frame = read_parquet(settings.data)
    names = [f.name for f in settings.features]
    require_columns(frame, [*names, settings.target, settings.timestamp], str(settings.data))
    missing = int(frame[settings.target].isna().sum())
    if missing:
        raise StepError(f"target {settings.target} has {missing} missing value(s)")
    return split_by_time(frame, settings.timestamp, settings.holdout)


def inputs(settings: TrainSettings, frame: pd.DataFrame) -> pd.DataFrame:
    """The feature columns cast exactly as the evaluate step and a client feed them
    (booleans to 0/1 for int64 inputs, numbers to float32, labels to str)."""
    tensors = [Tensor(f.name, f.dtype, (-1, 1)) for f in settings.features]
    arrays = feeds(frame, tensors)
    return pd.DataFrame({name: array.ravel() for name, array in arrays.items()})


def labels(settings: TrainSettings, column: pd.Series) -> np.ndarray:
    """Regression targets as float64; class labels as int64 when every one is a whole
    number (0.0/1.0 included), else as text: the type of the graph's label output."""
    values = column.to_numpy()
    if task_family(settings.task) != CLASSIFICATION:
        return values.astype(np.float64)
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        as_float = values.astype(np.float64)
        if np.array_equal(as_float, np.round(as_float)):
            return as_float.astype(np.int64)
    return column.astype(str).to_numpy(dtype=object)


# ----------------------------------------------------------------------------- training


def check_labels(settings: TrainSettings, y: np.ndarray) -> None:
    """XGBoost's classifiers learn classes 0..K-1 only; its ONNX graph has no label map."""
    if settings.estimator.library != "xgboost" or task_family(settings.task) != CLASSIFICATION:
        return
    found = np.unique(y)
    if y.dtype != np.int64 or not np.array_equal(found, np.arange(len(found))):
        shown = ", ".join(str(c) for c in found[:5])
        raise StepError(
            f"xgboost classifiers take the classes 0..K-1, and {settings.target} holds "
            f"{shown}; recode the target, or use an sklearn estimator"
        )


def fit(settings: TrainSettings, x: pd.DataFrame, y: np.ndarray) -> tuple[Pipeline, float]:
    check_labels(settings, y)
    model = build_model(
        settings.estimator, settings.task, settings.params, settings.features, settings.seed
    )
    start = time.perf_counter()
    # One thread: reductions over a varying thread count could change float sums and so
    # the splits, which would make the same data give different bytes on another machine.
    with threadpool_limits(limits=1):
        try:
            model.fit(x, y)
        except ValueError as error:  # scikit-learn's InvalidParameterError among them
            raise StepError(f"{settings.estimator.key} cannot be fitted: {error}") from error
    return model, time.perf_counter() - start


def check_classes(settings: TrainSettings, model: Pipeline) -> None:
    """The probability output's columns follow the spec's `classes`."""
    if settings.classes is None or task_family(settings.task) != CLASSIFICATION:
        return
    learned = tuple(str(c) for c in model.classes_)
    if learned != settings.classes:
        raise StepError(
            f"the training rows hold the classes {list(learned)} (the probability output's "
            f"order), but the spec declares {list(settings.classes)}; list them in this order"
        )


def parity(settings: TrainSettings, model: Pipeline, payload: bytes, x: pd.DataFrame) -> float:
    """Largest difference between onnxruntime and the library on `x`; StepError beyond the
    tolerance, or on any label that differs."""
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    feed = {name: x[name].to_numpy().reshape(-1, 1) for name in x.columns}
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, feed), strict=True))
    if task_family(settings.task) == CLASSIFICATION:
        differing = int(np.count_nonzero(outputs["label"].ravel() != model.predict(x)))
        if differing:
            raise StepError(f"{differing} ONNX label(s) differ from the library's on the holdout")
        expected = model.predict_proba(x)
        actual = outputs["probabilities"]
    else:
        expected = model.predict(x).reshape(-1)
        actual = outputs["prediction"].reshape(-1)
    if len(expected) == 0:
        return 0.0
    diff = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if diff > PARITY_RTOL * scale:
        raise StepError(f"ONNX differs from the library by {diff:g} (tolerance {PARITY_RTOL:g})")
    return diff


def train(settings: TrainSettings) -> int:
    train_rows, holdout_rows = read_rows(settings)
    x_train = inputs(settings, train_rows)
    x_holdout = inputs(settings, holdout_rows)
    progress(
        "train",
        f"{settings.name}: {settings.estimator.key} on {len(x_train)} rows "
        f"(holdout {len(x_holdout)}), seed {settings.seed}",
    )
    model, seconds = fit(settings, x_train, labels(settings, train_rows[settings.target]))
    check_classes(settings, model)
    payload = to_onnx(
        model, settings.name, settings.task, settings.features, settings.estimator.library
    )
    diff = parity(settings, model, payload, x_holdout)
    path = settings.output_dir / "model.onnx"
    write_atomic(path, payload)
    progress(
        "train",
        f"wrote {path} size={len(payload)} sha256={sha256_bytes(payload)} "
        f"onnx_max_abs_diff={diff:.2e} train_s={seconds:.2f}",
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda: train(settings_from(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
