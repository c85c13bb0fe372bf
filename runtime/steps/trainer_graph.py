"""The built-in trainer's model: preprocessing from the FeatureSet's kinds, the estimator of
Kiln's table, and its export to ONNX as one deterministic graph.

Preprocessing rules (docs/pipelines.md, "The built-in trainer"):

* continuous numbers pass through as they are served (float32 or int64 inputs); for an
  estimator that cannot take NaN, missing values are replaced by the training median, and
  for a linear one the columns are also standardised - both inside the graph;
* categorical strings are one-hot encoded inside the graph (a value unseen in training
  encodes as all zeros); categorical whole numbers (0/1 booleans included) pass through
  for tree models, which split on them as they are, and are one-hot encoded for linear ones.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common.data_types import (
    DataType,
    DoubleTensorType,
    FloatTensorType,
    Int32TensorType,
    Int64TensorType,
    StringTensorType,
)
from skl2onnx.common.shape_calculator import (
    calculate_linear_classifier_output_shapes,
    calculate_linear_regressor_output_shapes,
)
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from runtime.contract.trainers import CLASSIFICATION, Estimator, ParamValue, task_family

# Pinned so that the exported graph does not change when a converter's default opset moves.
TARGET_OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}
INPUT_TYPES: dict[str, type[DataType]] = {
    "fp32": FloatTensorType,
    "fp64": DoubleTensorType,
    "int32": Int32TensorType,
    "int64": Int64TensorType,
    "string": StringTensorType,
}
# What each library is told, whatever the spec says: one thread and no chatter, so that
# the same data and seed give the same trees (and the same bytes) on any machine.
# scikit-learn's n_jobs defaults to one process already (and some estimators warn on it).
FIXED_SETTINGS: dict[str, dict[str, ParamValue]] = {
    "sklearn": {},
    "xgboost": {"n_jobs": 1, "tree_method": "hist", "verbosity": 0},
    "lightgbm": {},  # runtime/steps/lightgbm_booster.py fixes threads and determinism
}


@dataclass(frozen=True)
class FeatureColumn:
    """A FeatureSet column as the trainer sees it: its input type and its kind."""

    name: str
    dtype: str  # Kiln's tensor type: fp32, int64, string, ...
    kind: str  # continuous or categorical


def estimator_class(estimator: Estimator, task: str) -> type[Any]:
    """The class Kiln's table names for this estimator and task; never text from a spec."""
    module_name, _, class_name = estimator.classes[task_family(task)].rpartition(".")
    cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return cls


@functools.cache
def labelled_xgb_classifier() -> type[Any]:
    """XGBClassifier, learning labels as their indices 0..K-1 but naming them in classes_.

    XGBoost's classes_ is always 0..K-1; onnxmltools writes classes_ as the graph's label
    map, so this class's graph returns the original labels (text, or numbers like 1..K).
    Defined on first use, so that sklearn-only training never imports xgboost."""
    from xgboost import XGBClassifier

    class LabelledXGBClassifier(XGBClassifier):  # type: ignore[misc]
        # Set after fitting (fit checks that classes_ is 0..K-1): the labels of 0..K-1.
        labels: np.ndarray | None = None

        @property
        def classes_(self) -> np.ndarray:
            return np.arange(self.n_classes_) if self.labels is None else self.labels

    return LabelledXGBClassifier


def build_model(
    estimator: Estimator,
    task: str,
    params: Mapping[str, ParamValue],
    features: tuple[FeatureColumn, ...],
    seed: int,
    labelled: bool = False,
) -> Pipeline:
    """Preprocessing and the estimator in one scikit-learn pipeline. `labelled`: an
    XGBoost classifier whose classes 0..K-1 are named after fitting (its `labels`)."""
    cls = labelled_xgb_classifier() if labelled else estimator_class(estimator, task)
    settings: dict[str, Any] = {**estimator.defaults, **params}
    settings.update(FIXED_SETTINGS[estimator.library])
    accepted = cls().get_params()
    if "random_state" in accepted:
        settings["random_state"] = seed
    if "feature_names" in accepted:  # a native-only model names its columns when trained
        settings["feature_names"] = [f.name for f in features]
    return Pipeline([("preprocess", _preprocess(estimator, features)), ("model", cls(**settings))])


def _preprocess(estimator: Estimator, features: tuple[FeatureColumn, ...]) -> ColumnTransformer:
    """Numbers first (in FeatureSet order), then the one-hot encoded categories."""
    # Trees split whole-number categories as they are; a linear model needs them one-hot.
    numbers_raw = not estimator.linear
    raw = [
        f.name for f in features if f.kind == "continuous" or (numbers_raw and f.dtype != "string")
    ]
    text = [f.name for f in features if f.kind == "categorical" and f.dtype == "string"]
    numbers = [f.name for f in features if f.kind == "categorical" and f.dtype != "string"]
    steps: list[tuple[str, Any, list[str]]] = []
    if raw:
        steps.append(("raw", _continuous(estimator), raw))
    # One encoder per input type: an ONNX encoder takes either strings or integers.
    encoded = [("onehot", text)] + ([] if numbers_raw else [("onehot_numbers", numbers)])
    for name, columns in encoded:
        if columns:
            # ignore: a category unseen in training encodes as all zeros, not an error.
            encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
            steps.append((name, encoder, columns))
    return ColumnTransformer(steps, sparse_threshold=0.0)


def _continuous(estimator: Estimator) -> Any:
    # Passing raw float32 values through keeps the ONNX tree thresholds comparing the very
    # numbers the library compared.
    if estimator.native_missing:
        return "passthrough"
    if estimator.linear:
        return make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    return SimpleImputer(strategy="median")


# ------------------------------------------------------------------------------ export


def _register_converters() -> None:
    """Teach skl2onnx the XGBoost estimators, with onnxmltools' converters. Imported
    here, on first export, so that sklearn-only training never loads them."""
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from xgboost import XGBClassifier, XGBRegressor

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for cls, alias, convert, shapes, options in (
        (XGBClassifier, "XGBoostXGBClassifier", convert_xgboost,
         calculate_linear_classifier_output_shapes, classifier_options),
        (labelled_xgb_classifier(), "KilnLabelledXGBClassifier", convert_xgboost,
         calculate_linear_classifier_output_shapes, classifier_options),
        (XGBRegressor, "XGBoostXGBRegressor", convert_xgboost,
         calculate_linear_regressor_output_shapes, None),
    ):  # fmt: skip
        update_registered_converter(cls, alias, shapes, convert, options=options)


def to_onnx(
    model: Pipeline, name: str, task: str, features: tuple[FeatureColumn, ...], library: str
) -> bytes:
    """The fitted pipeline as ONNX bytes: inputs named like the features, shape [-1, 1];
    outputs label and probabilities (classifiers, no ZipMap) or prediction [-1, 1]."""
    if library != "sklearn":
        _register_converters()
    initial_types = [(f.name, INPUT_TYPES[f.dtype]([None, 1])) for f in features]
    classifier = task_family(task) == CLASSIFICATION
    proto: onnx.ModelProto = convert_sklearn(
        model,
        # A fixed name: skl2onnx otherwise names the graph after a fresh uuid each run.
        name=name,
        initial_types=initial_types,
        final_types=None if classifier else [("prediction", FloatTensorType([None, 1]))],
        target_opset=TARGET_OPSET,
        # zipmap off: plain label and probability tensors, which Triton can serve.
        options={id(model): {"zipmap": False}} if classifier else None,
    )
    proto.doc_string = ""
    proto.graph.doc_string = ""
    # The converters collect opset domains in a set, whose order follows PYTHONHASHSEED.
    opsets = sorted((entry.domain, entry.version) for entry in proto.opset_import)
    del proto.opset_import[:]
    for domain, version in opsets:
        proto.opset_import.add(domain=domain, version=version)
    onnx.checker.check_model(proto)
    # deterministic=True: protobuf's promise of one byte layout for one message.
    payload: bytes = proto.SerializeToString(deterministic=True)
    return payload


def to_native(model: Pipeline, library: str, names: list[str]) -> bytes:
    """The fitted model as its library's own file, its features named in FeatureSet order
    (the compiler reads the names back and checks them against the FeatureSet): XGBoost's
    JSON, LightGBM's text model.

    A native model has numbers only, which the preprocessing passes through in FeatureSet
    order (NaN included: both libraries take it), so the booster alone is the whole model."""
    if library == "lightgbm":
        return _lightgbm_text(model, names)
    booster = model.named_steps["model"].get_booster()
    if booster.num_features() != len(names):
        raise ValueError(f"the booster reads {booster.num_features()} columns, not {len(names)}")
    booster.feature_names = list(names)
    # JSON, not UBJSON: a documented text format the compiler reads without xgboost.
    return bytes(booster.save_raw(raw_format="json"))


def _lightgbm_text(model: Pipeline, names: list[str]) -> bytes:
    booster = model.named_steps["model"].booster_
    if booster.feature_name() != names:
        raise ValueError(f"the booster reads {booster.feature_name()}, not {names}")
    text: str = booster.model_to_string()
    return text.encode("utf-8")
