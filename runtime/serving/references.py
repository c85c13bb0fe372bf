"""What `kiln smoke` compares a server's answers with: the model's own library, in process.

One reference per format that Kiln can run on a CPU:

* ONNX: onnxruntime, set up like the adapter (one intra-op thread). Exact: the local
  adapter runs the same onnxruntime, and the cluster's onnxruntime backend the same graph.
* xgboost, lightgbm: the library's Booster, with FIL's meaning of the config's parameters
  applied (runtime/contract/tree_predict.py). Exact where the local adapter serves the
  model (the same library and code path); within `FIL_TOLERANCE` against the cluster's
  FIL backend, which sums the trees in float32 where the libraries use float64.

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
    """|served - library| <= atol + rtol * |library|, element by element."""

    rtol: float
    atol: float

    def __str__(self) -> str:
        return f"within rtol {self.rtol:g}, atol {self.atol:g}"


# FIL against the library: float32 accumulation over a few hundred trees moves a score by
# a few float32 ulps (relative 1e-7 each); 1e-5 leaves room for that, and a row whose
# feature lies on a split threshold that float32 rounds can still differ (reported).
FIL_TOLERANCE = Tolerance(rtol=1e-5, atol=1e-5)
# torch against a cluster's libtorch (another build, maybe a GPU): float32 matrix products
# summed in another order move each value by a few ulps per layer.
TORCH_TOLERANCE = Tolerance(rtol=1e-4, atol=1e-5)


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
        self.tolerance = None if exact else FIL_TOLERANCE

    def features(self) -> list[str]:
        booster = self.predictor.booster
        names = booster.feature_names if self.library == "xgboost" else booster.feature_name()
        if not names:
            raise SampleDataError("the tree model names no features; its columns are unknown")
        return [str(n) for n in names]

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
