"""The train step of Kiln's built-in trainer (`training.trainer` in a Model spec).

    python -m runtime.steps.train --trainer JSON --task TASK --features JSON \\
        [--classes JSON] --name MODEL

It reads the same KILN_* variables a user's own training command reads (TRAIN_ENV, see
docs/pipelines.md): the features step's parquet, its digest, the seed, the held-out share,
the target and timestamp columns and the output folder. It trains on the oldest
(1 - holdout) share of the rows, the split the evaluate step uses, writes model.onnx (or,
with `output: native`, the library's own xgboost.json), and fails unless that file, run as
the evaluate step runs it, reproduces the library's predictions on the held-out rows: the
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
import pandas as pd
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from runtime.contract.signature import Tensor
from runtime.contract.steps import TRAIN, TRAIN_ENV
from runtime.contract.trainers import (
    CLASSIFICATION,
    NATIVE_FORMATS,
    NATIVE_ONLY,
    NATIVE_OUTPUT,
    ONNX_OUTPUT,
    Estimator,
    artifact_file,
    find_estimator,
    model_format,
    task_family,
)
from runtime.steps.model_runner import load_runner
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
from runtime.steps.trainer_graph import FeatureColumn, build_model, to_native, to_onnx

# ONNX against the library on the held-out rows, relative to the output's scale (at least
# 1): both evaluate the same trees or weights, in float32 in the graph and in float64 (or
# float32) in the library, so only the order and width of the sums differ.
PARITY_RTOL = 1e-5


@dataclass(frozen=True)
class TrainSettings:
    """One run: the trainer's settings from flags, the data's from KILN_* variables."""

    estimator: Estimator
    params: dict[str, Any]
    output: str  # onnx, or native: the library's own file
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
    output = str(trainer.get("output", ONNX_OUTPUT))
    native = output == NATIVE_OUTPUT
    if native:
        offered = estimator.library in NATIVE_FORMATS
    else:  # LightGBM has no ONNX export in Kiln
        offered = output == ONNX_OUTPUT and estimator.library not in NATIVE_ONLY
    if not offered:
        raise StepError(f"--trainer: {estimator.key} has no output {output!r}")
    features = tuple(
        FeatureColumn(f["name"], f["dtype"], f["kind"])
        for f in json_argument(args.features, "--features")
    )
    text = [f.name for f in features if f.dtype == "string"]
    if native and text:
        raise StepError(f"a native model reads numbers only; text features: {', '.join(text)}")
    classes = None if args.classes is None else json_argument(args.classes, "--classes")
    seed = _number(TRAIN_ENV.seed, "0", int)
    if not 0 <= seed < 2**32:  # the range every library takes as a random state
        raise StepError(f"{TRAIN_ENV.seed} must be in [0, 2**32), got {seed}")
    return TrainSettings(
        estimator=estimator,
        params=dict(trainer.get("params") or {}),
        output=output,
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


def encode_labels(settings: TrainSettings, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(what the estimator learns, the class names or None).

    XGBoost's classifiers learn the classes 0..K-1 only. Other labels (text, or numbers
    such as 1..K) are learned as their index in sorted order - the order scikit-learn's
    classifiers keep - and the exported graph names them again (see `fit`). A native model
    (XGBoost or LightGBM) cannot: FIL serves class indices and scores, so there the labels
    are refused.
    build_model names the labels (trainer_graph.labelled_xgb_classifier)."""
    if task_family(settings.task) != CLASSIFICATION:
        return y, None
    if settings.estimator.library != "xgboost" and settings.output != NATIVE_OUTPUT:
        return y, None
    classes, indices = np.unique(y, return_inverse=True)
    if y.dtype == np.int64 and np.array_equal(classes, np.arange(len(classes))):
        return y, None
    if settings.output == NATIVE_OUTPUT:
        shown = ", ".join(str(c) for c in classes[:5])
        raise StepError(
            f"a native {settings.estimator.library} model serves the classes 0..K-1 only, "
            f"and {settings.target} "
            f"holds {shown}; recode the target, or use output onnx"
        )
    return indices.astype(np.int64), classes


def fit(settings: TrainSettings, x: pd.DataFrame, y: np.ndarray) -> tuple[Pipeline, float]:
    learned, names = encode_labels(settings, y)
    model = build_model(
        settings.estimator,
        settings.task,
        settings.params,
        settings.features,
        settings.seed,
        labelled=names is not None,
    )
    start = time.perf_counter()
    # One thread: reductions over a varying thread count could change float sums and so
    # the splits, which would make the same data give different bytes on another machine.
    with threadpool_limits(limits=1):
        try:
            model.fit(x, learned)
        except ValueError as error:  # scikit-learn's InvalidParameterError among them
            raise StepError(f"{settings.estimator.key} cannot be fitted: {error}") from error
    if names is not None:
        model.named_steps["model"].labels = names
    return model, time.perf_counter() - start


def predicted_labels(settings: TrainSettings, model: Pipeline, x: pd.DataFrame) -> np.ndarray:
    """The library's labels for `x`: XGBoost predicts class indices, which classes_ names."""
    predicted = model.predict(x)
    if settings.estimator.library == "xgboost":
        return np.asarray(model.classes_)[predicted]
    return np.asarray(predicted)


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


def parity(
    settings: TrainSettings, model: Pipeline, format_name: str, payload: bytes, x: pd.DataFrame
) -> float:
    """Largest difference between the written artifact, run as the later steps run it, and
    the library on `x`; StepError beyond the tolerance, or on any label that differs."""
    runner = load_runner(format_name, payload, f"the trained {format_name} model")
    tensors = [Tensor(f.name, f.dtype, (-1, 1)) for f in settings.features]
    names = [o.name for o in runner.get_outputs()]
    outputs = dict(zip(names, runner.run(None, runner.feeds(x, tensors)), strict=True))
    classifier = task_family(settings.task) == CLASSIFICATION
    if format_name != "onnx":
        # FIL's one output: the probabilities (classifiers) or the value (regression).
        outputs = {"probabilities" if classifier else "prediction": outputs[names[0]]}
    if classifier:
        expected = model.predict_proba(x)
        actual = outputs["probabilities"]
        found = outputs.get("label", model.classes_[np.argmax(actual, axis=1)])
        differing = int(np.count_nonzero(found.ravel() != predicted_labels(settings, model, x)))
        if differing:
            raise StepError(f"{differing} {format_name} label(s) differ from the library's")
    else:
        expected = model.predict(x).reshape(-1)
        actual = outputs["prediction"].reshape(-1)
    if len(expected) == 0:
        return 0.0
    diff = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if diff > PARITY_RTOL * scale:
        raise StepError(
            f"the {format_name} model differs from the library by {diff:g} "
            f"(tolerance {PARITY_RTOL:g})"
        )
    return diff


def export(settings: TrainSettings, model: Pipeline) -> tuple[str, bytes]:
    """The trained model's format and bytes: one ONNX graph, or the library's own file."""
    library = settings.estimator.library
    if settings.output == NATIVE_OUTPUT:
        names = [f.name for f in settings.features]
        return model_format(library, settings.output), to_native(model, library, names)
    features = settings.features
    return "onnx", to_onnx(model, settings.name, settings.task, features, library)


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
    format_name, payload = export(settings, model)
    diff = parity(settings, model, format_name, payload, x_holdout)
    path = settings.output_dir / artifact_file(settings.estimator.library, settings.output)
    write_atomic(path, payload)
    progress(
        "train",
        f"wrote {path} size={len(payload)} sha256={sha256_bytes(payload)} "
        f"{format_name}_max_abs_diff={diff:.2e} train_s={seconds:.2f}",
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda: train(settings_from(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
