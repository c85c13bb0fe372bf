"""Train Kiln's two example models on NannyML's bundled data and export them to ONNX.

Models:

* ``car-loan-default``: binary classifier on ``load_synthetic_car_loan_dataset()``.
* ``car-price``: regressor on ``load_synthetic_car_price_dataset()``.

Only the *reference* period of each data set is used. It is ordered by timestamp; the first
80% trains the model and the last 20% is held out for the reported metric and for checking
that the ONNX graph reproduces scikit-learn's predictions.

Every raw feature is its own ONNX input named like the column, shape ``[None, 1]``:

* numeric columns -> ``tensor(float)`` (cast to float32 before training, so that the model
  is fitted on exactly the values the served graph will see);
* string columns -> ``tensor(string)``, one-hot encoded inside the graph;
* boolean columns (``repaid_loan_on_prev_car``) -> ``tensor(int64)`` holding 0/1. ONNX
  ``tensor(bool)`` inputs are poorly supported by skl2onnx's ColumnTransformer converter and
  by many clients, while 0/1 integers are unambiguous and cast losslessly to float in-graph.

The output is byte-for-byte reproducible for a given set of library versions: the graph name
is fixed, the doc string is cleared, training is pinned to one thread and protobuf is
serialised deterministically.

Two modes.

*Example mode* (no data given) trains on NannyML's reference period as described above::

    python -m runtime.examples.train_example --model all --out specs/artifacts/models --version 1

*Pipeline mode* is what the training step of a Kiln pipeline runs. The pipeline passes
everything through environment variables, so that a user's training command needs no Kiln
flags; each has a flag that takes precedence::

    KILN_DATA         --data         features.parquet written by the features step (required)
    KILN_DATA_SHA256  --data-sha256  its expected sha256; checked before training when set
    KILN_SEED         --seed         random seed (default 0)
    KILN_HOLDOUT      --holdout      share of rows held out for evaluation (default 0.2)
    KILN_TARGET       --target       target column (default: the model's own)
    KILN_TIMESTAMP    --timestamp    timestamp column (default: timestamp)
    KILN_OUTPUT_DIR   --output-dir   where model.onnx is written (required)

    python -m runtime.examples.train_example --model car-loan-default

It trains on the first (1 - holdout) share of the rows in time order, the split the evaluate
step uses (both call runtime.steps.pipeline_io.split_by_time), so evaluation only sees rows the
model never saw. The features step keeps source dtypes, so the bool column
``repaid_loan_on_prev_car`` arrives as bool: the cast to int64 0/1 happens here, in
``feature_frame``, as it does in example mode. Same data and seed give the same model.onnx
bytes; on the features of NannyML's reference period with seed 0 and holdout 0.2 that is the
very artifact example mode writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# NannyML phones home on import unless told not to; training must work offline and quietly.
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import (
    DataType,
    FloatTensorType,
    Int64TensorType,
    StringTensorType,
)
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.metrics import mean_absolute_error, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from runtime.contract.steps import TRAIN_ENV
from runtime.steps.pipeline_io import (
    StepError,
    progress,
    read_parquet,
    require_columns,
    run_main,
    sha256_file,
    split_by_time,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "specs" / "artifacts" / "models"

# Pinned so that the exported graph does not change when skl2onnx's default opset moves.
TARGET_OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}
RANDOM_STATE = 0
TRAIN_FRACTION = 0.8

# ONNX-vs-sklearn tolerance, relative to the prediction scale. Both sides evaluate the same
# float32 trees, so the only difference is float32 vs float64 summation of the leaf values.
PARITY_RTOL = 1e-5

CLASSIFIER = "classifier"
REGRESSOR = "regressor"


@dataclass(frozen=True)
class ExampleModel:
    """What to train: data source, typed feature lists and target."""

    name: str
    task: str
    load: Callable[[], Any]
    features: tuple[str, ...]  # ONNX input order, as listed in the example spec
    categorical: frozenset[str]
    boolean: frozenset[str]
    target: str

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f for f in self.features if f not in self.categorical | self.boolean)


def nannyml_loader(name: str) -> Callable[[], Any]:
    """NannyML's loader `name`, imported on first use: pipeline mode never needs NannyML,
    and importing it takes seconds."""

    def load() -> Any:
        import nannyml

        return getattr(nannyml, name)()

    return load


MODELS: dict[str, ExampleModel] = {
    "car-loan-default": ExampleModel(
        name="car-loan-default",
        task=CLASSIFIER,
        load=nannyml_loader("load_synthetic_car_loan_dataset"),
        features=(
            "car_value",
            "salary_range",
            "debt_to_income_ratio",
            "loan_length",
            "repaid_loan_on_prev_car",
            "size_of_downpayment",
            "driver_tenure",
        ),
        categorical=frozenset({"salary_range", "size_of_downpayment"}),
        boolean=frozenset({"repaid_loan_on_prev_car"}),
        target="repaid",
    ),
    "car-price": ExampleModel(
        name="car-price",
        task=REGRESSOR,
        load=nannyml_loader("load_synthetic_car_price_dataset"),
        features=(
            "car_age",
            "km_driven",
            "price_new",
            "accident_count",
            "door_count",
            "fuel",
            "transmission",
        ),
        categorical=frozenset({"fuel", "transmission"}),
        boolean=frozenset(),
        target="y_true",
    ),
}


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_holdout: pd.DataFrame
    y_holdout: np.ndarray


@dataclass(frozen=True)
class Result:
    name: str
    path: Path
    size: int
    sha256: str
    metrics: dict[str, float | int]
    train_seconds: float
    io: list[str]


# --------------------------------------------------------------------------- data


def load_reference(model: ExampleModel) -> pd.DataFrame:
    """Reference period only, in time order (the analysis period is what gets monitored)."""
    reference = model.load()[0]
    order = pd.to_datetime(reference["timestamp"]).argsort(kind="stable")
    return reference.iloc[order].reset_index(drop=True)


def feature_frame(model: ExampleModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Cast every feature to the dtype its ONNX input will have."""
    columns: dict[str, np.ndarray] = {}
    for name in model.features:
        if name in model.categorical:
            # Plain object arrays: pandas 3's Arrow-backed "str" dtype is not what the
            # ONNX string input carries, and OneHotEncoder categories should be plain str.
            columns[name] = frame[name].astype(str).to_numpy(dtype=object)
        elif name in model.boolean:
            columns[name] = frame[name].astype(bool).to_numpy(dtype=np.int64)
        else:
            columns[name] = frame[name].to_numpy(dtype=np.float32)
    return pd.DataFrame(columns)


def target_vector(model: ExampleModel, frame: pd.DataFrame) -> np.ndarray:
    y: np.ndarray = frame[model.target].to_numpy()
    # "repaid" is stored as float 0.0/1.0; int64 classes give an int64 ONNX label output.
    return y.astype(np.int64) if model.task == CLASSIFIER else y.astype(np.float64)


def time_split(model: ExampleModel, frame: pd.DataFrame) -> Split:
    """First TRAIN_FRACTION of the time-ordered reference period trains, the rest is held out."""
    x = feature_frame(model, frame)
    y = target_vector(model, frame)
    cut = int(len(frame) * TRAIN_FRACTION)
    return Split(
        x_train=x.iloc[:cut].reset_index(drop=True),
        y_train=y[:cut],
        x_holdout=x.iloc[cut:].reset_index(drop=True),
        y_holdout=y[cut:],
    )


# ------------------------------------------------------------------------ training


def build_pipeline(model: ExampleModel, seed: int = RANDOM_STATE) -> Pipeline:
    categorical = [f for f in model.features if f in model.categorical]
    passthrough = [f for f in model.features if f not in model.categorical]
    preprocess = ColumnTransformer(
        [
            # Trees need no scaling; passing raw float32 values through keeps the ONNX tree
            # thresholds comparing the exact same numbers scikit-learn compared.
            ("raw", "passthrough", passthrough),
            # ignore: an unseen category at serving time encodes as all zeros, not an error.
            (
                "onehot",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32),
                categorical,
            ),
        ],
        sparse_threshold=0.0,
    )
    # Small, shallow ensembles: good enough on this data and well under 500 KB as ONNX.
    # early_stopping=False because the validation split it draws would be another source
    # of randomness and would change the number of trees.
    params: dict[str, Any] = {
        "max_iter": 100,
        "max_leaf_nodes": 15,
        "early_stopping": False,
        "random_state": seed,
    }
    estimator = (
        HistGradientBoostingClassifier(**params)
        if model.task == CLASSIFIER
        else HistGradientBoostingRegressor(**params)
    )
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def fit(model: ExampleModel, split: Split, seed: int = RANDOM_STATE) -> tuple[Pipeline, float]:
    pipeline = build_pipeline(model, seed)
    start = time.perf_counter()
    # One thread: OpenMP reductions over a varying thread count are the one way float
    # sums (and so tree splits) could differ between machines.
    with threadpool_limits(limits=1):
        pipeline.fit(split.x_train, split.y_train)
    return pipeline, time.perf_counter() - start


# -------------------------------------------------------------------------- export


def onnx_input_type(model: ExampleModel, name: str) -> DataType:
    if name in model.categorical:
        return StringTensorType([None, 1])
    if name in model.boolean:
        return Int64TensorType([None, 1])
    return FloatTensorType([None, 1])


def to_onnx(model: ExampleModel, pipeline: Pipeline) -> onnx.ModelProto:
    initial_types = [(name, onnx_input_type(model, name)) for name in model.features]
    if model.task == CLASSIFIER:
        # zipmap=False: plain label + probability tensors instead of a sequence of maps,
        # which Triton and most clients cannot consume.
        options: dict[int, dict[str, Any]] | None = {id(pipeline): {"zipmap": False}}
        final_types = None
    else:
        options = None
        final_types = [("prediction", FloatTensorType([None, 1]))]
    proto: onnx.ModelProto = convert_sklearn(
        pipeline,
        # A fixed name: skl2onnx otherwise names the graph after a fresh uuid each run.
        name=model.name,
        initial_types=initial_types,
        final_types=final_types,
        target_opset=TARGET_OPSET,
        options=options,
    )
    proto.doc_string = ""
    proto.graph.doc_string = ""
    # skl2onnx collects the opset domains in a set, so their order follows PYTHONHASHSEED;
    # sorting makes the bytes independent of the interpreter's hash seed.
    opsets = sorted((entry.domain, entry.version) for entry in proto.opset_import)
    del proto.opset_import[:]
    for domain, version in opsets:
        proto.opset_import.add(domain=domain, version=version)
    onnx.checker.check_model(proto)
    return proto


def serialize(proto: onnx.ModelProto) -> bytes:
    # deterministic=True: protobuf's guarantee of a stable byte layout for the same message.
    payload: bytes = proto.SerializeToString(deterministic=True)
    return payload


def write_atomic(path: Path, payload: bytes) -> None:
    """Readers (e.g. a model server polling the directory) never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; a model server running as another user must read them.
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------- validation


def session_for(payload: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(payload, providers=["CPUExecutionProvider"])


def describe_io(session: ort.InferenceSession) -> list[str]:
    lines = [f"input  {i.name} {i.type} {i.shape}" for i in session.get_inputs()]
    lines += [f"output {o.name} {o.type} {o.shape}" for o in session.get_outputs()]
    return lines


def onnx_feeds(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {name: frame[name].to_numpy().reshape(-1, 1) for name in frame.columns}


def parity_diff(
    model: ExampleModel, pipeline: Pipeline, session: ort.InferenceSession, x: pd.DataFrame
) -> float:
    """Max abs difference between ONNX and scikit-learn on x; raises if they disagree."""
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, onnx_feeds(x)), strict=True))
    if model.task == CLASSIFIER:
        expected = pipeline.predict_proba(x)
        actual = outputs["probabilities"]
        mismatched = int(np.count_nonzero(outputs["label"] != pipeline.predict(x)))
        if mismatched:
            raise RuntimeError(f"{model.name}: {mismatched} ONNX labels differ from sklearn")
    else:
        expected = pipeline.predict(x)
        actual = outputs["prediction"].ravel()
    diff = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if diff > PARITY_RTOL * scale:
        raise RuntimeError(f"{model.name}: ONNX differs from sklearn by {diff:g}")
    return diff


def holdout_metrics(model: ExampleModel, pipeline: Pipeline, split: Split) -> dict[str, float]:
    if model.task == CLASSIFIER:
        scores = pipeline.predict_proba(split.x_holdout)[:, 1]
        return {"roc_auc": float(roc_auc_score(split.y_holdout, scores))}
    predictions = pipeline.predict(split.x_holdout)
    return {"mae": float(mean_absolute_error(split.y_holdout, predictions))}


# ---------------------------------------------------------------------------- main


def train_one(model: ExampleModel, out_dir: Path, version: int) -> Result:
    split = time_split(model, load_reference(model))
    pipeline, seconds = fit(model, split)
    payload = serialize(to_onnx(model, pipeline))
    session = session_for(payload)
    metrics: dict[str, float | int] = {
        **holdout_metrics(model, pipeline, split),
        "onnx_max_abs_diff": parity_diff(model, pipeline, session, split.x_holdout),
        "train_rows": len(split.x_train),
        "holdout_rows": len(split.x_holdout),
    }
    path = out_dir / model.name / str(version) / "model.onnx"
    write_atomic(path, payload)
    return Result(
        name=model.name,
        path=path,
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        metrics=metrics,
        train_seconds=seconds,
        io=describe_io(session),
    )


def summary_line(result: Result) -> str:
    headline = {k: v for k, v in result.metrics.items() if k in ("roc_auc", "mae")}
    metric = " ".join(f"{k}={v:.4f}" for k, v in headline.items())
    return (
        f"{result.name}: {result.path} size={result.size} sha256={result.sha256} "
        f"{metric} train_s={result.train_seconds:.2f}"
    )


def write_metrics_json(path: Path, results: Sequence[Result]) -> None:
    # Timings are left out on purpose: the file should be as reproducible as the models.
    document = {r.name: {"sha256": r.sha256, "metrics": r.metrics} for r in results}
    text = json.dumps(document, sort_keys=True, indent=2) + "\n"
    write_atomic(path, text.encode("utf-8"))


# ------------------------------------------------------------------ pipeline mode


@dataclass(frozen=True)
class PipelineRun:
    """Pipeline-mode settings, from flags first and KILN_* environment variables second."""

    data: Path
    data_sha256: str | None
    seed: int
    holdout: float
    target: str
    timestamp: str
    output_dir: Path


def _setting(flag: Any, env: str, default: str | None = None) -> str | None:
    if flag is not None:
        return str(flag)
    value = os.environ.get(env, "").strip()
    return value or default


def _number(text: str | None, name: str, kind: Callable[[str], Any]) -> Any:
    try:
        return kind(text or "")
    except ValueError as error:
        raise StepError(f"{name} must be a number, got {text!r}") from error


def pipeline_run(args: argparse.Namespace, model: ExampleModel) -> PipelineRun:
    env = TRAIN_ENV
    data = _setting(args.data, env.data)
    output_dir = _setting(args.output_dir, env.output_dir)
    if data is None or output_dir is None:
        raise StepError(
            f"pipeline mode needs {env.data} (--data) and {env.output_dir} (--output-dir)"
        )
    seed = _number(_setting(args.seed, env.seed, "0"), f"{env.seed} (--seed)", int)
    if not 0 <= seed < 2**32:  # scikit-learn's range for random_state
        raise StepError(f"{env.seed} (--seed) must be in [0, 2**32), got {seed}")
    holdout = _setting(args.holdout, env.holdout, "0.2")
    return PipelineRun(
        data=Path(data),
        data_sha256=_setting(args.data_sha256, env.data_sha256),
        seed=seed,
        holdout=_number(holdout, env.holdout, float),
        target=_setting(args.target, env.target, model.target) or model.target,
        timestamp=_setting(args.timestamp, env.timestamp, "timestamp") or "timestamp",
        output_dir=Path(output_dir),
    )


def pipeline_split(model: ExampleModel, run: PipelineRun) -> Split:
    if not run.data.is_file():
        raise StepError(f"{TRAIN_ENV.data} (--data): no such file: {run.data}")
    if run.data_sha256 is not None:
        actual = sha256_file(run.data)
        if actual != run.data_sha256.strip().lower():
            raise StepError(
                f"{run.data} has sha256 {actual}, but {TRAIN_ENV.data_sha256} is {run.data_sha256}"
            )
    frame = read_parquet(run.data)
    require_columns(frame, [*model.features, model.target, run.timestamp], str(run.data))
    missing = int(frame[model.target].isna().sum())
    if missing:
        raise StepError(f"target {model.target} has {missing} missing value(s)")
    train, holdout = split_by_time(frame, run.timestamp, run.holdout)
    return Split(
        x_train=feature_frame(model, train),
        y_train=target_vector(model, train),
        x_holdout=feature_frame(model, holdout),
        y_holdout=target_vector(model, holdout),
    )


def train_pipeline(base: ExampleModel, args: argparse.Namespace) -> int:
    run = pipeline_run(args, base)
    model = replace(base, target=run.target)
    split = pipeline_split(model, run)
    progress(
        "train",
        f"{model.name}: train rows={len(split.x_train)} "
        f"holdout rows={len(split.x_holdout)} seed={run.seed}",
    )
    pipeline, seconds = fit(model, split, run.seed)
    payload = serialize(to_onnx(model, pipeline))
    # The parity check guards the export; the metrics that gate publication are the
    # evaluate step's, computed on the ONNX file itself.
    diff = parity_diff(model, pipeline, session_for(payload), split.x_holdout)
    path = run.output_dir / "model.onnx"
    write_atomic(path, payload)
    progress(
        "train",
        f"wrote {path} size={len(payload)} sha256={hashlib.sha256(payload).hexdigest()} "
        f"onnx_max_abs_diff={diff:.2e} train_s={seconds:.2f}",
    )
    return 0


# ---------------------------------------------------------------------------- main


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of pipeline mode, each naming the train step's variable it overrides."""
    env = TRAIN_ENV
    pipeline = parser.add_argument_group(
        f"pipeline mode (on when --data or {env.data} is set; flags override KILN_* variables)"
    )
    pipeline.add_argument("--data", help=f"features.parquet [{env.data}]")
    pipeline.add_argument("--data-sha256", help=f"expected digest of --data [{env.data_sha256}]")
    pipeline.add_argument("--seed", type=int, help=f"random seed [{env.seed}, default 0]")
    pipeline.add_argument("--holdout", type=float, help=f"held-out share [{env.holdout}, 0.2]")
    pipeline.add_argument("--target", help=f"target column [{env.target}]")
    pipeline.add_argument("--timestamp", help=f"timestamp column [{env.timestamp}]")
    pipeline.add_argument("--output-dir", help=f"where model.onnx goes [{env.output_dir}]")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.examples.train_example",
        description="Train the example models and export ONNX (see the module doc for modes).",
    )
    parser.add_argument("--model", choices=[*MODELS, "all"], default="all")
    example = parser.add_argument_group("example mode (NannyML's reference data)")
    example.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="model repository root (default: <repo>/specs/artifacts/models)",
    )
    example.add_argument("--version", type=int, default=1, help="model version directory")
    example.add_argument("--metrics-json", type=Path, help="also write {model: {sha256, metrics}}")
    add_pipeline_arguments(parser)
    args = parser.parse_args(argv)
    if args.version < 1:
        parser.error("--version must be >= 1")
    args.pipeline_mode = _setting(args.data, TRAIN_ENV.data) is not None
    if args.pipeline_mode and args.model == "all":
        parser.error("pipeline mode trains one model: pass --model NAME")
    return args


def train_examples(args: argparse.Namespace) -> int:
    names = list(MODELS) if args.model == "all" else [args.model]
    results: list[Result] = []
    for name in names:
        try:
            result = train_one(MODELS[name], args.out, args.version)
        except RuntimeError as error:  # parity failures: report, do not ship the model
            print(f"error: {error}", file=sys.stderr)
            return 1
        results.append(result)
        print(summary_line(result))
        for line in result.io:
            print(f"  {line}")
    if args.metrics_json is not None:
        write_metrics_json(args.metrics_json, results)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.pipeline_mode:
        return train_examples(args)
    try:
        return run_main(lambda: train_pipeline(MODELS[args.model], args))
    except RuntimeError as error:  # parity failures: report, do not ship the model
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
