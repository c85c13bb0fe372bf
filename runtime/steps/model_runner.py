"""Predict with a trained artifact: the one definition, per format, that the train,
evaluate and validate steps share.

A runner looks like an onnxruntime session (`get_inputs`, `get_outputs`, `run`) and also
builds its own feeds from a frame of feature columns, so a step never asks which format
it holds:

* ONNX (`model.onnx`): onnxruntime on CPU, one input per feature column;
* XGBoost JSON (`xgboost.json`) and LightGBM text (`model.txt`): the library itself,
  answering as Triton's FIL backend serves the model - one fp32 input `input__0` of the
  features named in the file, and one fp32 output `output__0` with a value per row
  (regression) or a probability per class (classifiers, FIL's predict_proba; two columns
  for a binary classifier).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from runtime.contract.formats import FIL_INPUT, FIL_MODEL_FILES, FIL_OUTPUT, FORMATS
from runtime.contract.signature import Tensor
from runtime.contract.tree_predict import fil_answer
from runtime.steps.pipeline_io import StepError, feeds

ONNX_FILE = FORMATS["onnx"].model_file
XGBOOST_FILE = FIL_MODEL_FILES["xgboost_json"]
LIGHTGBM_FILE = FIL_MODEL_FILES["lightgbm"]
# XGBoost objectives that classify; everything else is a regression (reg:, count:, ...).
CLASSIFYING = ("binary:", "multi:")


class ModelRunner(Protocol):
    format: str

    def get_inputs(self) -> Sequence[Any]: ...
    def get_outputs(self) -> Sequence[Any]: ...
    def feeds(self, frame: pd.DataFrame, inputs: Sequence[Tensor]) -> dict[str, np.ndarray]: ...
    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class NodeInfo:
    """A tensor as onnxruntime describes one: name, `tensor(float)` type, shape."""

    name: str
    type: str
    shape: list[int | str]


class OnnxRunner:
    format = "onnx"

    def __init__(self, payload: bytes, where: str) -> None:
        import onnxruntime as ort  # only where an ONNX model is run

        try:
            self.session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own, unexported exception types
            raise StepError(f"onnxruntime cannot load {where}: {error}") from error

    def get_inputs(self) -> Sequence[Any]:
        return list(self.session.get_inputs())

    def get_outputs(self) -> Sequence[Any]:
        return list(self.session.get_outputs())

    def feeds(self, frame: pd.DataFrame, inputs: Sequence[Tensor]) -> dict[str, np.ndarray]:
        return feeds(frame, inputs)

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        result: list[np.ndarray] = self.session.run(None if names is None else list(names), feed)
        return result


class FilRunner:
    """A tree model's own file, described and answering as FIL serves it."""

    format = ""
    features: tuple[str, ...]
    classifier: bool
    classes: int

    def get_inputs(self) -> Sequence[Any]:
        return [NodeInfo(FIL_INPUT, "tensor(float)", ["N", len(self.features)])]

    def get_outputs(self) -> Sequence[Any]:
        width = self.classes if self.classifier else 1
        return [NodeInfo(FIL_OUTPUT, "tensor(float)", ["N", width])]

    def feeds(self, frame: pd.DataFrame, inputs: Sequence[Tensor]) -> dict[str, np.ndarray]:
        """The file's features, in its order, as FIL's one fp32 row per example."""
        if frame.empty:
            return {FIL_INPUT: np.zeros((0, len(self.features)), np.float32)}
        columns = feeds(frame, [Tensor(name, "fp32", (-1, 1)) for name in self.features])
        return {FIL_INPUT: np.hstack([columns[name] for name in self.features])}

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        if names is not None and list(names) != [FIL_OUTPUT]:
            raise StepError(f"a {self.format} model has the one output {FIL_OUTPUT}")
        matrix = feed[FIL_INPUT]
        return [self.answer(self.scores(matrix), len(matrix))]

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def answer(self, scores: np.ndarray, rows: int) -> np.ndarray:
        """What FIL returns with the settings Kiln's trainer publishes (output_class and
        predict_proba for a classifier, neither for a regressor): a binary classifier's
        one score becomes [1 - p, p]."""
        answer = fil_answer(scores, self.classifier, self.classifier)
        return answer.reshape(rows, self.classes if self.classifier else 1)


class XGBoostRunner(FilRunner):
    format = "xgboost"

    def __init__(self, payload: bytes, where: str) -> None:
        import xgboost  # only where a native XGBoost model is run

        self.xgboost = xgboost
        try:
            self.booster = xgboost.Booster(model_file=bytearray(payload))
            config = json.loads(self.booster.save_config())
        except (xgboost.core.XGBoostError, ValueError) as error:
            raise StepError(f"xgboost cannot load {where}: {error}") from error
        # One thread, as in training: the sums, and so the answers, do not vary by machine.
        self.booster.set_param({"nthread": 1})
        names = self.booster.feature_names
        if not names:
            raise StepError(f"{where} names no features; Kiln's trainer always records them")
        self.features = tuple(names)
        learner = config["learner"]
        self.classifier = learner["objective"]["name"].startswith(CLASSIFYING)
        self.classes = max(2, int(learner["learner_model_param"]["num_class"]))

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        rows = self.xgboost.DMatrix(matrix, feature_names=list(self.features), nthread=1)
        return np.asarray(self.booster.predict(rows))


class LightGBMRunner(FilRunner):
    format = "lightgbm"

    def __init__(self, payload: bytes, where: str) -> None:
        import lightgbm  # only where a native LightGBM model is run

        try:
            self.booster = lightgbm.Booster(model_str=payload.decode("utf-8"))
        except (lightgbm.basic.LightGBMError, UnicodeDecodeError) as error:
            raise StepError(f"lightgbm cannot load {where}: {error}") from error
        self.features = tuple(self.booster.feature_name())
        header = _lightgbm_header(payload)
        self.classifier = header.get("objective", "").startswith(("binary", "multiclass"))
        self.classes = max(2, int(header.get("num_class", "1")))

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(matrix, num_threads=1))


def _lightgbm_header(payload: bytes) -> dict[str, str]:
    """The key=value lines before the first tree (objective, num_class, ...)."""
    header = payload.split(b"\nTree=", 1)[0].decode("utf-8", "replace")
    return dict(line.split("=", 1) for line in header.splitlines() if "=" in line)


RUNNERS: dict[str, type[OnnxRunner] | type[FilRunner]] = {
    "onnx": OnnxRunner,
    "xgboost": XGBoostRunner,
    "lightgbm": LightGBMRunner,
}
FORMAT_BY_FILE = {ONNX_FILE: "onnx", XGBOOST_FILE: "xgboost", LIGHTGBM_FILE: "lightgbm"}


def format_of(path: Path) -> str:
    """The format a trained file has, by the name Triton looks for (formats.py)."""
    return FORMAT_BY_FILE.get(path.name, "onnx")


def load_runner(format_name: str, payload: bytes, where: str) -> ModelRunner:
    runner = RUNNERS.get(format_name)
    if runner is None:
        raise StepError(f"{where}: Kiln's steps cannot run a {format_name} model")
    return runner(payload, where)


def open_runner(path: Path) -> ModelRunner:
    try:
        payload = path.read_bytes()
    except OSError as error:
        raise StepError(f"cannot read the model {path}: {error.strerror}") from error
    return load_runner(format_of(path), payload, str(path))
