"""The evaluate step: metrics of the trained model on the held-out rows, and the gates.

    python -m runtime.steps.evaluate --model FILE --data FILE --signature SIG
        --task binary_classification|multiclass_classification|regression
        --target COL --timestamp COL --holdout F --metrics roc_auc,f1
        [--gates JSON] [--baseline JSON] --out DIR

The held-out rows are the last F share of --data in time order: the rows the training step
left out (both use runtime.steps.pipeline_io.split_by_time). Each input of the signature is fed
from the column of the same name, cast to the input's dtype (bool -> int64 0/1 where the
input is int64). The model runs on CPU as runtime/steps/model_runner.py runs its format:
an ONNX file in onnxruntime, a native XGBoost file (xgboost.json) in xgboost, answering as
Triton's FIL backend does (one fp32 input__0 of the features the file names).

Metrics: classification uses the probabilities output (the float output with one column per
class) and the label output (argmax of the probabilities when there is none):
roc_auc, average_precision, f1, precision, recall, specificity, accuracy (multiclass: macro
averages, roc_auc one-vs-rest). Regression uses the single float output: mae, mape (a
fraction, not a percentage), mse, msle, rmse, rmsle, r2.

Gates: a JSON list of {"metric", one of "min" | "max" | "max_regression"}; max_regression is
against --baseline, the serving version's recorded metrics ({"roc_auc": 0.97}, or a version
entry with a "metrics" object). Getting worse means a drop for roc_auc, average_precision,
f1, precision, recall, specificity, accuracy and r2, and a rise for mae, mape, mse, msle,
rmse and rmsle. All gates are evaluated; each failure is printed on its own line, e.g.
`gate failed: roc_auc 0.8123 is below the minimum 0.85 by 0.0377`, and the step exits 1.
A max_regression gate whose metric the baseline lacks is skipped, with a note; without
--baseline (no version is served yet: a model's first run) each one passes with a note
saying there is nothing to compare with.

Output, in DIR (written before the gates are applied, so a failed run can be inspected):

* metrics.json: {metric: value}, sorted keys, 6 decimals; the --metrics plus every gated
  metric (a later max_regression gate needs this version's value of the metric).
* evaluation.json: the metrics, the row counts, the artifact and data digests and each
  gate's outcome. Neither file holds a timing, so the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from runtime.contract.outputs import output_roles as roles_of
from runtime.contract.signature import Signature, SignatureError, Tensor
from runtime.contract.steps import EVALUATE
from runtime.contract.vocabulary import HIGHER_IS_BETTER, task_metrics
from runtime.steps.model_runner import open_runner
from runtime.steps.pipeline_io import (
    StepError,
    comma_list,
    json_argument,
    json_text,
    progress,
    read_parquet,
    require_columns,
    round_metric,
    run_main,
    sha256_file,
    signature_argument,
    split_by_time,
    write_text,
)

STEP = "evaluate"
GATE_KINDS = ("min", "max", "max_regression")
# Rows per model call: bounds memory on large holdouts, no effect on the results.
CHUNK_ROWS = 8192
# Metrics are rounded to 6 decimals; differences below this are rounding, not regression.
TOLERANCE = 1e-9


# ------------------------------------------------------------------------ predictions


@dataclass(frozen=True)
class Predictions:
    labels: np.ndarray | None  # classification: one label per row
    probabilities: np.ndarray | None  # classification: (rows, classes)
    values: np.ndarray | None  # regression: one float per row


def output_roles(signature: Signature, task: str) -> dict[str, Tensor]:
    """Which outputs hold labels, probabilities or the regression value."""
    try:
        return roles_of(signature, task)
    except SignatureError as error:
        raise StepError(str(error)) from error


def run_model(model: Path, frame: pd.DataFrame, signature: Signature, task: str) -> Predictions:
    roles = output_roles(signature, task)
    runner = open_runner(model)
    names = [t.name for t in roles.values()]
    missing = sorted(set(names) - {o.name for o in runner.get_outputs()})
    if missing:
        raise StepError(f"the model has no output(s) {', '.join(missing)} named in the signature")
    chunks: list[list[np.ndarray]] = []
    for start in range(0, len(frame), CHUNK_ROWS):
        batch = runner.feeds(frame.iloc[start : start + CHUNK_ROWS], signature.inputs)
        try:
            chunks.append(runner.run(names, batch))
        except StepError:
            raise
        except Exception as error:  # onnxruntime's and xgboost's own exception types
            raise StepError(f"{runner.format} failed on {model}: {error}") from error
    joined = {name: np.concatenate([c[i] for c in chunks]) for i, name in enumerate(names)}
    by_role = {role: joined[tensor.name] for role, tensor in roles.items()}
    return Predictions(
        labels=by_role["labels"].reshape(-1) if "labels" in by_role else None,
        probabilities=by_role.get("probabilities"),
        values=by_role["values"].reshape(-1).astype(np.float64) if "values" in by_role else None,
    )


# ---------------------------------------------------------------- classification


def as_labels(values: np.ndarray) -> np.ndarray:
    """Integral floats (a 0.0/1.0 target) -> int64; text -> str; so labels compare equal."""
    if values.dtype.kind in "fbiu":
        as_float = values.astype(np.float64)
        if np.isnan(as_float).any():
            raise StepError("the target has missing values in the held-out rows")
        if np.array_equal(as_float, np.round(as_float)):
            return as_float.astype(np.int64)
        raise StepError("a classification target must hold class labels, not fractions")
    return values.astype(str).astype(object)


def class_order(y: np.ndarray, predictions: Predictions) -> np.ndarray:
    """The class of each probability column: the sorted classes, as scikit-learn orders them."""
    seen = set(y.tolist())
    if predictions.labels is not None:
        seen |= set(as_labels(predictions.labels).tolist())
    classes = np.array(sorted(seen), dtype=y.dtype)
    if predictions.probabilities is None:
        return classes
    width = predictions.probabilities.shape[1]
    if len(classes) == width:
        return classes
    # A class absent from the holdout: integer labels 0..C-1 still name the columns.
    if y.dtype.kind in "iu" and set(seen) <= set(range(width)):
        return np.arange(width, dtype=np.int64)
    raise StepError(
        f"cannot match the {width} probability columns to the classes found: "
        f"{', '.join(map(str, classes))}"
    )


def specificity(y: np.ndarray, predicted: np.ndarray, classes: np.ndarray) -> float:
    """True-negative rate per class (one vs rest), averaged over the classes given."""
    rates = []
    for cls in classes:
        negatives = y != cls
        rates.append(float(np.mean(predicted[negatives] != cls)) if negatives.any() else 0.0)
    return float(np.mean(rates))


def classification_metrics(
    y_raw: np.ndarray, predictions: Predictions, binary: bool, wanted: Sequence[str]
) -> dict[str, float]:
    y = as_labels(y_raw)
    classes = class_order(y, predictions)
    probabilities = predictions.probabilities
    if probabilities is not None:
        probabilities = probabilities.astype(np.float64)
        # float32 rows sum to 1 only approximately; scikit-learn checks multiclass sums.
        probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    if predictions.labels is not None:
        predicted = as_labels(predictions.labels)
    elif probabilities is not None:
        predicted = classes[np.argmax(probabilities, axis=1)]
    else:  # output_roles() guarantees one of the two
        raise StepError("the model has neither a label nor a probabilities output")
    if binary and len(classes) != 2:
        raise StepError(f"binary_classification found {len(classes)} classes: {list(classes)}")
    positive = classes[-1]  # the greater label (1 of 0/1), probability column 1
    scores: dict[str, Callable[[], float]] = {
        "accuracy": lambda: skm.accuracy_score(y, predicted),
        "specificity": lambda: specificity(y, predicted, classes[-1:] if binary else classes),
    }
    if binary:
        for name, function in (
            ("f1", skm.f1_score),
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
        ):
            scores[name] = lambda f=function: f(y, predicted, pos_label=positive, zero_division=0)
    else:
        for name, function in (
            ("f1", skm.f1_score),
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
        ):
            scores[name] = lambda f=function: f(
                y, predicted, labels=classes, average="macro", zero_division=0
            )
    if probabilities is not None:
        scores.update(ranking_scores(y, probabilities, classes, binary))
    return compute(scores, wanted)


def ranking_scores(
    y: np.ndarray, probabilities: np.ndarray, classes: np.ndarray, binary: bool
) -> dict[str, Callable[[], float]]:
    if binary:
        truth, score = y == classes[-1], probabilities[:, -1]
        return {
            "roc_auc": lambda: skm.roc_auc_score(truth, score),
            "average_precision": lambda: skm.average_precision_score(truth, score),
        }
    one_hot = label_binarize(y, classes=classes)
    return {
        "roc_auc": lambda: skm.roc_auc_score(
            y, probabilities, multi_class="ovr", average="macro", labels=classes
        ),
        "average_precision": lambda: skm.average_precision_score(
            one_hot, probabilities, average="macro"
        ),
    }


# -------------------------------------------------------------------- regression


def regression_metrics(
    y_raw: np.ndarray, predicted: np.ndarray, wanted: Sequence[str]
) -> dict[str, float]:
    y = y_raw.astype(np.float64)
    if np.isnan(y).any():
        raise StepError("the target has missing values in the held-out rows")

    def squared_log_error() -> float:
        if (y < 0).any() or (predicted < 0).any():
            raise StepError("msle/rmsle are undefined: a target or prediction is negative")
        return float(np.mean((np.log1p(y) - np.log1p(predicted)) ** 2))

    scores: dict[str, Callable[[], float]] = {
        "mae": lambda: skm.mean_absolute_error(y, predicted),
        "mape": lambda: skm.mean_absolute_percentage_error(y, predicted),
        "mse": lambda: skm.mean_squared_error(y, predicted),
        "rmse": lambda: math.sqrt(skm.mean_squared_error(y, predicted)),
        "msle": squared_log_error,
        "rmsle": lambda: math.sqrt(squared_log_error()),
        "r2": lambda: skm.r2_score(y, predicted),
    }
    return compute(scores, wanted)


def compute(scores: Mapping[str, Callable[[], float]], wanted: Sequence[str]) -> dict[str, float]:
    result = {}
    for name in wanted:
        if name not in scores:
            raise StepError(f"metric {name} needs a probabilities output the model lacks")
        try:
            with warnings.catch_warnings():
                # The undefined cases are reported below, as one line naming the metric.
                warnings.simplefilter("ignore")
                value = float(scores[name]())
        except ValueError as error:  # e.g. roc_auc with one class in the holdout
            raise StepError(f"{name} cannot be computed on the held-out rows: {error}") from error
        if not math.isfinite(value):
            raise StepError(
                f"{name} is undefined on the held-out rows (is a class missing from them?)"
            )
        result[name] = round_metric(value)
    return dict(sorted(result.items()))


# ------------------------------------------------------------------------- gates


@dataclass(frozen=True)
class Gate:
    metric: str
    kind: str
    bound: float


@dataclass(frozen=True)
class GateResult:
    metric: str
    kind: str
    bound: float
    value: float
    baseline: float | None
    passed: bool
    skipped: bool
    message: str


def parse_gates(value: str | None) -> list[Gate]:
    if value is None or not value.strip():
        return []
    document = json_argument(value, "--gates")
    if not isinstance(document, list):
        raise StepError("--gates must be a JSON list of {metric, min|max|max_regression}")
    gates = []
    for index, entry in enumerate(document):
        bounds = [k for k in GATE_KINDS if isinstance(entry, dict) and entry.get(k) is not None]
        metric = entry.get("metric") if isinstance(entry, dict) else None
        if not isinstance(metric, str) or len(bounds) != 1:
            raise StepError(f"gate {index}: needs a metric and exactly one of {GATE_KINDS}")
        bound = entry[bounds[0]]
        if not isinstance(bound, int | float) or isinstance(bound, bool):
            raise StepError(f"gate {index} ({metric}): {bounds[0]} must be a number")
        gates.append(Gate(metric=metric, kind=bounds[0], bound=float(bound)))
    return gates


def parse_baseline(value: str | None) -> dict[str, float] | None:
    """The serving version's metrics; None when no version is served yet."""
    if value is None or value.strip() in ("", "null"):
        return None
    document = json_argument(value, "--baseline")
    if isinstance(document, dict) and isinstance(document.get("metrics"), dict):
        document = document["metrics"]  # a whole version entry
    if not isinstance(document, dict):
        raise StepError('--baseline must be a JSON object like {"roc_auc": 0.97}')
    baseline = {}
    for name, number in document.items():
        if not isinstance(number, int | float) or isinstance(number, bool):
            raise StepError(f"--baseline: {name} must be a number")
        baseline[str(name)] = float(number)
    return baseline


def check_gate(gate: Gate, value: float, baseline: Mapping[str, float] | None) -> GateResult:
    def result(
        passed: bool, message: str, base: float | None = None, skip: bool = False
    ) -> GateResult:
        return GateResult(gate.metric, gate.kind, gate.bound, value, base, passed, skip, message)

    name, bound = gate.metric, gate.bound
    if gate.kind == "min":
        if value >= bound - TOLERANCE:
            return result(True, f"gate passed: {name} {value:.4f} >= minimum {bound:g}")
        short = bound - value
        return result(
            False, f"gate failed: {name} {value:.4f} is below the minimum {bound:g} by {short:.4f}"
        )
    if gate.kind == "max":
        if value <= bound + TOLERANCE:
            return result(True, f"gate passed: {name} {value:.4f} <= maximum {bound:g}")
        over = value - bound
        return result(
            False, f"gate failed: {name} {value:.4f} is above the maximum {bound:g} by {over:.4f}"
        )
    return check_regression(gate, value, baseline, result)


def check_regression(
    gate: Gate,
    value: float,
    baseline: Mapping[str, float] | None,
    result: Callable[..., GateResult],
) -> GateResult:
    name, bound = gate.metric, gate.bound
    if baseline is None:
        return result(
            True,
            f"note: gate {name} max_regression {bound:g} passed: no version is served yet, "
            "so there is no baseline to compare with",
            skip=True,
        )
    base = baseline.get(name)
    if base is None:
        return result(
            True,
            f"note: gate {name} max_regression {bound:g} skipped: the baseline has no {name}",
            skip=True,
        )
    higher = name in HIGHER_IS_BETTER
    worse = base - value if higher else value - base  # > 0: got worse
    moved = "dropped" if higher else "rose"
    if worse <= bound + TOLERANCE:
        return result(
            True,
            f"gate passed: {name} {value:.4f} against the baseline {base:g} "
            f"(regression {max(worse, 0.0):.4f} <= {bound:g})",
            base,
        )
    return result(
        False,
        f"gate failed: {name} {value:.4f} {moved} by {worse:.4f} from the baseline {base:g}, "
        f"more than the allowed {bound:g} by {worse - bound:.4f}",
        base,
    )


# -------------------------------------------------------------------------- main


def wanted_metrics(task: str, requested: Sequence[str], gates: Sequence[Gate]) -> list[str]:
    wanted = list(dict.fromkeys([*requested, *(g.metric for g in gates)]))
    unknown = [m for m in wanted if m not in task_metrics(task)]
    if unknown:
        raise StepError(
            f"unknown metric(s) {', '.join(unknown)} for {task}; "
            f"known: {', '.join(task_metrics(task))}"
        )
    return sorted(wanted)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return EVALUATE.parser().parse_args(argv)


def evaluate(args: argparse.Namespace, wanted: Sequence[str]) -> tuple[dict[str, float], int, int]:
    signature = signature_argument(args.signature)
    frame = read_parquet(args.data)
    require_columns(frame, [args.target, args.timestamp], str(args.data))
    _, holdout = split_by_time(frame, args.timestamp, args.holdout)
    predictions = run_model(args.model, holdout, signature, args.task)
    y = holdout[args.target].to_numpy()
    if args.task == "regression":
        assert predictions.values is not None  # output_roles guarantees it
        return regression_metrics(y, predictions.values, wanted), len(frame), len(holdout)
    binary = args.task == "binary_classification"
    return classification_metrics(y, predictions, binary, wanted), len(frame), len(holdout)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    gates = parse_gates(args.gates)
    baseline = parse_baseline(args.baseline)
    wanted = wanted_metrics(args.task, comma_list(args.metrics), gates)
    metrics, rows, held_out = evaluate(args, wanted)
    summary = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    progress(STEP, f"{held_out} of {rows} rows held out: {summary}")
    results = [check_gate(g, metrics[g.metric], baseline) for g in gates]
    document = {
        "artifact_sha256": sha256_file(args.model),
        "data_sha256": sha256_file(args.data),
        "gates": [asdict(r) for r in results],
        "holdout": args.holdout,
        "holdout_rows": held_out,
        "metrics": metrics,
        "passed": all(r.passed for r in results),
        "rows": rows,
        "task": args.task,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "metrics.json", json_text(metrics))
    write_text(args.out / "evaluation.json", json_text(document))
    for passed in (r for r in results if r.passed):
        progress(STEP, passed.message)
    failed = [r for r in results if not r.passed]
    for failure in failed:
        print(failure.message, file=sys.stderr)
    progress(
        STEP,
        f"{len(gates) - len(failed)} of {len(gates)} gate(s) passed "
        f"in {time.perf_counter() - start:.2f}s",
    )
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
