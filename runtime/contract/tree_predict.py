"""How a tree model served by Triton's FIL backend answers, computed with the model's own
library (xgboost or lightgbm) on the CPU: the one definition of a tree model in Kiln.

`TreePredictor` loads the file, names its features and answers as FIL would, behind the
part of onnxruntime's session API that the callers share (`get_inputs`, `get_outputs`,
`run`). Three places use it: the local Triton's python-backend adapter (which copies this
file beside itself, so it imports nothing from Kiln and only numpy at the top), the
pipeline's steps (runtime/steps/model_runner.py: train, evaluate, validate), and
`kiln smoke`, which compares what Triton answers with this in process. FIL's meaning of
its parameters (fil_backend docs/model_config.md): `output_class` false gives the raw
prediction (a regressor's value); true gives a classifier's class, decided by
`threshold` (default 0.5) for two classes and by the largest score for more, unless
`predict_proba` asks for a score per class (two columns, 1 - p and p, for binary).
FIL computes in float32, so the input is cast to float32 before the library sees it.
An XGBoost file is first given the base score as the xgboost Kiln runs with (2.1) reads
it right (xgboost_file.py, beside this file too): XGBoost 3 writes it in a form 2.1
misreads without a word.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

try:  # in Kiln
    from runtime.contract import xgboost_file
except ImportError:  # beside the local adapter, which copies both files into its folder
    import xgboost_file  # type: ignore[no-redef]

# The FIL backend names its one input and one output so (fil_backend docs/model_config.md).
FIL_INPUT = "input__0"
FIL_OUTPUT = "output__0"

# The file formats each library reads, by FIL's model_type.
LIBRARIES = {
    "xgboost": "xgboost",
    "xgboost_json": "xgboost",
    "xgboost_ubj": "xgboost",
    "lightgbm": "lightgbm",
}
DEFAULT_THRESHOLD = 0.5
# XGBoost objectives that classify; everything else is a regression (reg:, count:, ...).
XGBOOST_CLASSIFYING = ("binary:", "multi:")
LIGHTGBM_CLASSIFYING = ("binary", "multiclass")


class TreeModelError(Exception):
    """The model file or the parameters cannot be served this way."""


def _flag(parameters: dict[str, str], name: str) -> bool:
    return parameters.get(name, "false").strip().lower() == "true"


@dataclass(frozen=True)
class Node:
    """A tensor as onnxruntime's NodeArg describes one: name, `tensor(float)` type, shape."""

    name: str
    type: str
    shape: list[int | str]


class TreePredictor:
    """One tree model loaded with its library, answering as FIL would. `source`: the
    model file's path, or its bytes."""

    def __init__(self, source: str | bytes, parameters: dict[str, str]) -> None:
        model_type = parameters.get("model_type", "")
        library = LIBRARIES.get(model_type)
        if library is None:
            raise TreeModelError(
                f"model_type {model_type!r} is not served locally (serve one of "
                f"{', '.join(sorted(LIBRARIES))})"
            )
        self.library = library
        self.output_class = _flag(parameters, "output_class")
        self.predict_proba = _flag(parameters, "predict_proba")
        self.threshold = float(parameters.get("threshold", DEFAULT_THRESHOLD))
        payload = source if isinstance(source, bytes) else _read(source)
        self.margins: np.ndarray | None = None  # each class's base margin, when given
        if library == "xgboost":
            payload = self._readable(payload)
        self.booster = _load(library, payload)
        self.classifier, self.score_columns = _kind(library, self.booster, payload)

    def _readable(self, payload: bytes) -> bytes:
        """The XGBoost model as xgboost 2.1 reads it right, in memory only."""
        try:
            readable = xgboost_file.for_xgboost_2(payload)
        except xgboost_file.XGBoostFileError as exc:
            raise TreeModelError(f"xgboost cannot load the model right: {exc}") from exc
        if readable.margins is not None:
            self.margins = np.asarray(readable.margins, np.float32)
        return readable.payload

    @classmethod
    def published(cls, source: str | bytes, model_type: str) -> TreePredictor:
        """The model as Kiln's trainer publishes it for FIL (trainers.fil_settings): a
        classifier with a probability per class, a regressor's value."""
        predictor = cls(source, {"model_type": model_type})
        predictor.output_class = predictor.predict_proba = predictor.classifier
        return predictor

    @property
    def width(self) -> int:
        """The number of feature columns the model reads."""
        if self.library == "xgboost":
            return int(self.booster.num_features())
        return int(self.booster.num_feature())

    @property
    def features(self) -> tuple[str, ...]:
        """The feature names stored in the file, in the order of input__0's columns."""
        booster = self.booster
        names = booster.feature_names if self.library == "xgboost" else booster.feature_name()
        if not names:
            raise TreeModelError("the tree model names no features; its columns are unknown")
        return tuple(str(name) for name in names)

    @property
    def output_width(self) -> int:
        """output__0's columns: the library's scores, a probability per class, or one."""
        if not self.output_class:
            return self.score_columns
        return max(2, self.score_columns) if self.predict_proba else 1

    def get_inputs(self) -> list[Node]:
        return [Node(FIL_INPUT, "tensor(float)", ["N", self.width])]

    def get_outputs(self) -> list[Node]:
        return [Node(FIL_OUTPUT, "tensor(float)", ["N", self.output_width])]

    def run(self, names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """onnxruntime's `run`: FIL's one output, for the one input."""
        if names is not None and list(names) != [FIL_OUTPUT]:
            raise TreeModelError(f"a tree model has the one output {FIL_OUTPUT}, not {names}")
        return [self.predict(feed[FIL_INPUT])]

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """The library's own prediction: a value (or P(class 1)) per row, or a score per
        class for more than two classes."""
        features = np.ascontiguousarray(rows, dtype=np.float32)
        if self.library == "xgboost":
            # inplace_predict uses the model's own objective transform, like predict().
            if self.margins is None:
                return np.asarray(self.booster.inplace_predict(features))
            margins = np.tile(self.margins, (len(features), 1))
            return np.asarray(self.booster.inplace_predict(features, base_margin=margins))
        # LightGBM takes its thread count per call (a loaded model keeps the file's).
        return np.asarray(self.booster.predict(features, num_threads=1))

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """FIL's output__0 for `rows` ([n, width] float32): [n, 1] or [n, classes]."""
        if len(rows) == 0:  # the libraries refuse an empty matrix
            return np.zeros((0, self.output_width), np.float32)
        answer = fil_answer(self.raw(rows), self.output_class, self.predict_proba, self.threshold)
        return answer.reshape(len(rows), self.output_width)


def fil_answer(
    raw: np.ndarray,
    output_class: bool,
    predict_proba: bool,
    threshold: float = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """FIL's output__0 from a library's own prediction (a value or P(class 1) per row, or
    a score per class): the one definition of what FIL answers."""
    scores = raw.reshape(len(raw), -1)  # [n, 1] for a value or P(class 1)
    if not output_class:
        return scores.astype(np.float32)
    if scores.shape[1] == 1:
        positive = scores[:, 0]
        if predict_proba:
            return np.stack([1.0 - positive, positive], axis=1).astype(np.float32)
        return (positive > threshold).astype(np.float32).reshape(-1, 1)
    if predict_proba:
        return scores.astype(np.float32)
    return np.argmax(scores, axis=1).astype(np.float32).reshape(-1, 1)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise TreeModelError(f"cannot read the model file {path}: {exc.strerror}") from exc


def _load(library: str, payload: bytes) -> Any:
    # Imported here: the adapter needs only the library of the model it serves.
    try:
        if library == "xgboost":
            import xgboost

            booster = xgboost.Booster(model_file=bytearray(payload))
            booster.set_param({"nthread": 1})  # instances give the parallelism, as with ONNX
            return booster
        import lightgbm

        return lightgbm.Booster(model_str=payload.decode("utf-8"))
    except ImportError:
        raise
    except Exception as exc:  # XGBoostError, LightGBMError, a file that is not text
        raise TreeModelError(f"{library} cannot load the model: {exc}") from exc


def _kind(library: str, booster: Any, payload: bytes) -> tuple[bool, int]:
    """(whether the model classifies, the columns of the library's own prediction)."""
    if library == "xgboost":
        learner = json.loads(booster.save_config())["learner"]
        classes = int(learner["learner_model_param"]["num_class"])
        return learner["objective"]["name"].startswith(XGBOOST_CLASSIFYING), max(1, classes)
    # LightGBM's text model starts with key=value lines (objective, num_class, ...).
    header = payload.split(b"\nTree=", 1)[0].decode("utf-8", "replace")
    fields = dict(line.split("=", 1) for line in header.splitlines() if "=" in line)
    classes = int(fields.get("num_class", "1"))
    return fields.get("objective", "").startswith(LIGHTGBM_CLASSIFYING), max(1, classes)
