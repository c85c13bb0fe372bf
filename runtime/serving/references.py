"""What `kiln smoke` compares a server's answers with: the model's own library, in process.

One reference per format that Kiln can run on a CPU:

* ONNX: onnxruntime, set up like the adapter (one intra-op thread). Exact: the local
  adapter runs the same onnxruntime, and the cluster's onnxruntime backend the same graph.
* xgboost, lightgbm: the library's Booster, with FIL's meaning of the config's parameters
  applied (runtime/contract/tree_predict.py). Exact where the local adapter serves the
  model (the same library and code path); within the format's `FIL_TOLERANCES` against
  the cluster's FIL backend, which holds and sums the trees in float32 (LightGBM uses
  float64; XGBoost float32, in another order).

* torchscript: torch.jit.load in process, through the code the local adapter runs
  (runtime/contract/torch_predict.py, one intra-op thread on both sides). Exact locally,
  where smoke's batches arrive one at a time and Triton runs each as sent: torch's CPU
  matrix product sums a row by the batch's row count, so a row that Triton batched with
  other traffic can differ in float32 rounding (docs/serving.md gives the measure).
  Within `TORCH_TOLERANCE` against a cluster's libtorch backend, another build of torch
  (maybe on a GPU) whose kernels sum in another order.

* python: the model's own code is the only reference; its answers are checked for the
  declared dtypes and shapes, their values are not compared.

A tree model takes one matrix (`input__0`); its columns are the feature names stored in
the model file, so the sample rows are read by those names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from runtime.contract.signature import Signature
from runtime.contract.torch_predict import TorchModelError, TorchPredictor, torch_missing
from runtime.contract.tree_predict import TreeModelError, TreePredictor
from runtime.serving.sample_data import SampleDataError, for_onnxruntime, to_inputs

TREE_FORMATS = ("xgboost", "lightgbm")


@dataclass(frozen=True)
class Tolerance:
    """|served - library| <= of_largest * max |library|, element by element, the largest
    taken over the output's values in the batch. Float32 accumulation errs in
    proportion to the partial sums it rounds, which are as large as the largest answers
    (a base score of 20,000 and trees that add and take away), not the row's own value."""

    of_largest: float

    def bound(self, want: np.ndarray) -> float:
        finite = np.abs(want[np.isfinite(want)])
        return self.of_largest * float(finite.max()) if finite.size else 0.0

    def __str__(self) -> str:
        return f"within {self.of_largest:g} x the largest |value|"


# FIL against the library, per format: benchmarks/fil_tolerance.py evaluates each forest
# as FIL holds it (float32 thresholds, leaves and sum, three summation orders) on
# NannyML's rows; the largest gap, over the largest |answer|, was 9.1e-7 for XGBoost
# (a 200-tree regressor on car-price) and 6.8e-7 for LightGBM (car-price-gbm). Ten times
# that leaves room for other tree counts and orders. A row whose feature lies between a
# LightGBM threshold and its float32 rounding takes another branch in FIL (2 rows in
# 100,000 of car-loan): smoke reports it, as the tolerance cannot tell it from a fault.
FIL_TOLERANCES = {"xgboost": Tolerance(of_largest=1e-5), "lightgbm": Tolerance(of_largest=1e-5)}
# torch against a cluster's libtorch (another build, maybe a GPU): float32 matrix products
# summed in another order move each value by a few ulps of the partial sums per layer.
TORCH_TOLERANCE = Tolerance(of_largest=1e-4)


class MissingLibrary(Exception):
    """The format's library is an optional extra that is not installed; says what to install."""


class Reference(Protocol):
    library: str  # named in the smoke report
    tolerance: Tolerance | None  # None: exactly equal

    def columns(self, signature: Signature) -> list[str]: ...
    def inputs(self, frame: Any, signature: Signature, rows: int) -> dict[str, np.ndarray]: ...
    def run(
        self, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]: ...


def onnx_session(model_file: Path) -> ort.InferenceSession:
    """onnxruntime in-process, set up like the adapter (one intra-op thread)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])


class BySignature:
    """A reference fed as the server is: one column of the sample rows per signature input."""

    def columns(self, signature: Signature) -> list[str]:
        return [t.name for t in signature.inputs]

    def inputs(self, frame: Any, signature: Signature, rows: int) -> dict[str, np.ndarray]:
        return to_inputs(frame, signature.inputs, rows)


class OnnxReference(BySignature):
    library = "onnxruntime"
    tolerance: Tolerance | None = None

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session

    def run(
        self, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        values = self.session.run(list(outputs), for_onnxruntime(arrays))
        return {n: np.asarray(v) for n, v in zip(outputs, values, strict=True)}


class TreeReference:
    def __init__(self, path: Path, parameters: dict[str, str], exact: bool) -> None:
        self.predictor = TreePredictor(str(path), parameters)
        self.library = self.predictor.library
        self.tolerance = None if exact else FIL_TOLERANCES[self.library]

    def features(self) -> list[str]:
        try:
            return list(self.predictor.features)
        except TreeModelError as exc:
            raise SampleDataError(str(exc)) from exc

    def columns(self, signature: Signature) -> list[str]:
        return self.features()

    def inputs(self, frame: Any, signature: Signature, rows: int) -> dict[str, np.ndarray]:
        names = self.features()
        clean = frame.dropna(subset=names)[names].head(rows)
        if clean.empty:
            raise SampleDataError("the sample data has no complete row for the model's features")
        (tensor,) = signature.inputs  # FIL's one input
        return {tensor.name: clean.to_numpy(dtype=np.float32)}

    def run(
        self, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        (matrix,) = arrays.values()
        answer = self.predictor.predict(matrix)
        return {name: answer for name in outputs}


class TorchReference(BySignature):
    library = "torch"

    def __init__(self, path: Path, signature: Signature, exact: bool) -> None:
        inputs = [t.name for t in signature.inputs]
        outputs = [t.name for t in signature.outputs]
        self.predictor = TorchPredictor(str(path), inputs, outputs)
        self.tolerance = None if exact else TORCH_TOLERANCE

    def run(
        self, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        answers = self.predictor.predict(arrays)
        return {name: answers[name] for name in outputs}


class OwnCode(BySignature):
    """A python model: its model.py is the only code that computes its answers, so there is
    nothing to compare values with; smoke checks each output's dtype and shape."""

    library = "its own model.py"
    tolerance: Tolerance | None = None

    def run(
        self, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        return {}


def reference_for(
    model_format: str,
    path: Path,
    parameters: dict[str, str],
    exact: bool,
    signature: Signature | None = None,
) -> Reference:
    """The in-process reference for a served model file (ValueError if none; MissingLibrary
    when the format's optional library is not installed). A TorchScript file names no
    tensors: its reference takes them from `signature`."""
    if model_format == "onnx":
        try:
            return OnnxReference(onnx_session(path))
        except Exception as exc:  # onnxruntime's errors share no base class but Exception
            raise ValueError(
                f"onnxruntime cannot open {path.name} as an ONNX model: {exc}"
            ) from exc
    if model_format in TREE_FORMATS:
        try:
            return TreeReference(path, parameters, exact)
        except TreeModelError as exc:
            raise ValueError(str(exc)) from exc
    if model_format == "python":
        return OwnCode()
    if model_format == "torchscript":
        return _torch_reference(path, signature, exact)
    raise ValueError(f"kiln smoke has no in-process reference for {model_format} models")


def _torch_reference(path: Path, signature: Signature | None, exact: bool) -> TorchReference:
    missing = torch_missing()
    if missing is not None:
        raise MissingLibrary(missing)
    if signature is None:
        raise ValueError("a TorchScript model names no tensors; its reference needs the signature")
    try:
        return TorchReference(path, signature, exact)
    except TorchModelError as exc:
        raise ValueError(str(exc)) from exc
