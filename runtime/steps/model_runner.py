"""Predict with a trained artifact: the one definition, per format, that the train,
evaluate and validate steps share.

A runner looks like an onnxruntime session (`get_inputs`, `get_outputs`, `run`) and also
builds its own feeds from a frame of feature columns, so a step never asks which format
it holds:

* ONNX (`model.onnx`): onnxruntime on CPU, one input per feature column;
* XGBoost JSON (`xgboost.json`) and LightGBM text (`model.txt`): the library itself,
  answering as Triton's FIL backend serves the model (runtime/contract/tree_predict.py) -
  one fp32 input `input__0` of the features named in the file, and one fp32 output
  `output__0` with a value per row (regression) or a probability per class (classifiers,
  FIL's predict_proba; two columns for a binary classifier).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from runtime.contract.formats import FIL_INPUT, FIL_MODEL_FILES, FORMATS
from runtime.contract.signature import Tensor
from runtime.contract.trainers import NATIVE_MODEL_TYPES
from runtime.contract.tree_predict import TreeModelError, TreePredictor
from runtime.steps.pipeline_io import StepError, feeds

ONNX_FILE = FORMATS["onnx"].model_file
XGBOOST_FILE = FIL_MODEL_FILES["xgboost_json"]
LIGHTGBM_FILE = FIL_MODEL_FILES["lightgbm"]


class ModelRunner(Protocol):
    format: str

    def get_inputs(self) -> Sequence[Any]: ...
    def get_outputs(self) -> Sequence[Any]: ...
    def feeds(self, frame: pd.DataFrame, inputs: Sequence[Tensor]) -> dict[str, np.ndarray]: ...
    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...


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


class TreeRunner:
    """A tree model's own file, described and answering as FIL serves it with the settings
    Kiln's trainer publishes (runtime/contract/tree_predict.py holds all of it)."""

    def __init__(self, format_name: str, payload: bytes, where: str) -> None:
        self.format = format_name
        try:
            self.predictor = TreePredictor.published(payload, NATIVE_MODEL_TYPES[format_name])
            self.features = self.predictor.features
        except TreeModelError as error:
            raise StepError(f"{where}: {error}") from error

    def get_inputs(self) -> Sequence[Any]:
        return self.predictor.get_inputs()

    def get_outputs(self) -> Sequence[Any]:
        return self.predictor.get_outputs()

    def feeds(self, frame: pd.DataFrame, inputs: Sequence[Tensor]) -> dict[str, np.ndarray]:
        """The file's features, in its order, as FIL's one fp32 row per example."""
        if frame.empty:
            return {FIL_INPUT: np.zeros((0, len(self.features)), np.float32)}
        columns = feeds(frame, [Tensor(name, "fp32", (-1, 1)) for name in self.features])
        return {FIL_INPUT: np.hstack([columns[name] for name in self.features])}

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self.predictor.run(None if names is None else list(names), feed)
        except TreeModelError as error:
            raise StepError(str(error)) from error


FORMAT_BY_FILE = {ONNX_FILE: "onnx", XGBOOST_FILE: "xgboost", LIGHTGBM_FILE: "lightgbm"}


def format_of(path: Path) -> str:
    """The format a trained file has, by the name Triton looks for (formats.py)."""
    return FORMAT_BY_FILE.get(path.name, "onnx")


def load_runner(format_name: str, payload: bytes, where: str) -> ModelRunner:
    if format_name == "onnx":
        return OnnxRunner(payload, where)
    if format_name in NATIVE_MODEL_TYPES:
        return TreeRunner(format_name, payload, where)
    raise StepError(f"{where}: Kiln's steps cannot run a {format_name} model")


def open_runner(path: Path) -> ModelRunner:
    try:
        payload = path.read_bytes()
    except OSError as error:
        raise StepError(f"cannot read the model {path}: {error.strerror}") from error
    return load_runner(format_of(path), payload, str(path))
