"""The built-in trainer's estimators: the one table the compiler checks specs against and
the train step builds models from.

A spec names a library and an estimator (`training.trainer`); it never names a class or a
module. Each entry maps that pair to the classes Kiln imports itself (one per task family)
and lists the parameters a spec may set, so a parameter the estimator does not take is a
compile-time diagnostic rather than a failed pod. Parameters that decide reproducibility
(seed, threads, logging) are Kiln's: `FIXED_PARAMS` says which, and a spec may not set them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runtime.contract.formats import FIL_MODEL_FILES, FIL_OUTPUT, FORMATS

# LightGBM through its Booster API only (runtime/steps/lightgbm_booster.py): NannyML 0.13
# pins lightgbm<4.6, whose scikit-learn wrapper does not fit scikit-learn 1.8 or newer (it
# passes the removed force_all_finite). Its models are written natively (model.txt) only.
LIBRARIES = ("sklearn", "xgboost", "lightgbm")
CLASSIFICATION = "classification"
REGRESSION = "regression"
# The train step's own command, rendered for a trainer-form training block.
TRAIN_MODULE = "runtime.steps.train"

# A parameter's value is a plain scalar. Text is limited to names such as "balanced" or
# "sqrt": nothing that a template engine, a shell or Kubernetes would read as code.
PARAM_TEXT = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
ParamValue = bool | int | float | str | None

# What the trainer writes (`training.trainer.output`): one ONNX graph with the
# preprocessing inside, or the library's own model file, which Triton's FIL backend serves.
ONNX_OUTPUT = "onnx"
NATIVE_OUTPUT = "native"
OUTPUTS = (ONNX_OUTPUT, NATIVE_OUTPUT)
# The model format (runtime/contract/formats.py) of each library's native file. scikit-learn
# has none that Triton serves; LightGBM is not offered (see LIBRARIES).
NATIVE_FORMATS = {"xgboost": "xgboost", "lightgbm": "lightgbm"}
# XGBoost's JSON model and LightGBM's text model: documented formats that name their
# features, which the compiler reads back to check them against the FeatureSet.
NATIVE_MODEL_TYPES = {"xgboost": "xgboost_json", "lightgbm": "lightgbm"}
# Libraries with no ONNX export in Kiln: their models are written natively only.
NATIVE_ONLY = ("lightgbm",)

# Output names the trainer's ONNX graph has, per task family (docs/pipelines.md).
CLASSIFIER_OUTPUTS = ("label", "probabilities")
REGRESSOR_OUTPUTS = ("prediction",)

# Set by Kiln on every estimator that takes them; listed so a spec cannot set them.
FIXED_PARAMS = frozenset(
    {"random_state", "seed", "n_jobs", "nthread", "verbose", "verbosity", "deterministic"}
)

_TREES = ("max_depth", "min_samples_leaf", "max_leaf_nodes")
_FOREST = (*_TREES, "n_estimators", "min_samples_split", "max_features", "bootstrap", "criterion")
_BOOSTED = (*_TREES, "n_estimators", "learning_rate", "subsample", "min_samples_split")
_HIST = (*_TREES, "max_iter", "learning_rate", "l2_regularization", "max_bins")
_HIST += ("early_stopping", "n_iter_no_change", "validation_fraction")
_XGB = ("n_estimators", "learning_rate", "max_depth", "min_child_weight", "subsample")
_XGB += ("colsample_bytree", "reg_alpha", "reg_lambda", "gamma", "max_bin")
_LGBM = ("n_estimators", "learning_rate", "num_leaves", "max_depth", "min_child_samples")
_LGBM += ("subsample", "colsample_bytree", "reg_alpha", "reg_lambda")
_LGBM_MODULE = "runtime.steps.lightgbm_booster"


@dataclass(frozen=True)
class Estimator:
    """One estimator a spec may name."""

    library: str
    name: str
    classes: dict[str, str]  # task family -> "module.Class" that Kiln imports
    params: frozenset[str]  # what a spec may set
    # Kiln's defaults, applied before the spec's params (which override them).
    defaults: dict[str, ParamValue] = field(default_factory=dict)
    # Takes NaN natively; otherwise missing continuous values are imputed in the graph.
    native_missing: bool = False
    # A linear model: continuous inputs are also standardised in the graph.
    linear: bool = False

    @property
    def key(self) -> str:
        return f"{self.library}/{self.name}"


def _both(module: str, stem: str) -> dict[str, str]:
    return {
        CLASSIFICATION: f"{module}.{stem}Classifier",
        REGRESSION: f"{module}.{stem}Regressor",
    }


ESTIMATORS: tuple[Estimator, ...] = (
    Estimator(
        "sklearn",
        "logistic_regression",
        {CLASSIFICATION: "sklearn.linear_model.LogisticRegression"},
        frozenset({"C", "max_iter", "tol", "fit_intercept", "class_weight", "solver"}),
        {"max_iter": 1000},
        linear=True,
    ),
    Estimator(
        "sklearn",
        "linear_regression",
        {REGRESSION: "sklearn.linear_model.LinearRegression"},
        frozenset({"fit_intercept"}),
        linear=True,
    ),
    Estimator(
        "sklearn",
        "ridge",
        {REGRESSION: "sklearn.linear_model.Ridge"},
        frozenset({"alpha", "fit_intercept", "tol", "max_iter"}),
        linear=True,
    ),
    Estimator(
        "sklearn", "random_forest", _both("sklearn.ensemble", "RandomForest"), frozenset(_FOREST)
    ),
    Estimator(
        "sklearn",
        "gradient_boosting",
        _both("sklearn.ensemble", "GradientBoosting"),
        frozenset(_BOOSTED),
    ),
    Estimator(
        "sklearn",
        "hist_gradient_boosting",
        _both("sklearn.ensemble", "HistGradientBoosting"),
        frozenset(_HIST),
        # early_stopping draws its own validation split: off unless asked for, so the
        # number of trees does not depend on the data's size.
        {"early_stopping": False},
        native_missing=True,
    ),
    Estimator(
        "xgboost",
        "xgb_classifier",
        {CLASSIFICATION: "xgboost.XGBClassifier"},
        frozenset(_XGB),
        native_missing=True,
    ),
    Estimator(
        "xgboost",
        "xgb_regressor",
        {REGRESSION: "xgboost.XGBRegressor"},
        frozenset(_XGB),
        native_missing=True,
    ),
    Estimator(
        "lightgbm",
        "lgbm_classifier",
        {CLASSIFICATION: f"{_LGBM_MODULE}.LightGBMClassifier"},
        frozenset(_LGBM),
        native_missing=True,
    ),
    Estimator(
        "lightgbm",
        "lgbm_regressor",
        {REGRESSION: f"{_LGBM_MODULE}.LightGBMRegressor"},
        frozenset(_LGBM),
        native_missing=True,
    ),
)


def task_family(task: str) -> str:
    """classification for both classifier tasks, regression for regression."""
    return REGRESSION if task == REGRESSION else CLASSIFICATION


def estimators_of(library: str) -> tuple[Estimator, ...]:
    return tuple(e for e in ESTIMATORS if e.library == library)


def find_estimator(library: str, name: str) -> Estimator | None:
    for estimator in ESTIMATORS:
        if estimator.library == library and estimator.name == name:
            return estimator
    return None


def outputs_for(task: str, output: str = ONNX_OUTPUT) -> tuple[str, ...]:
    """The output tensors the trainer's model has for `task`: FIL's one output for a
    native model, else the ONNX graph's."""
    if output == NATIVE_OUTPUT:
        return (FIL_OUTPUT,)
    return REGRESSOR_OUTPUTS if task_family(task) == REGRESSION else CLASSIFIER_OUTPUTS


def model_format(library: str, output: str) -> str:
    """The format of the file the trainer writes: onnx, or the library's own."""
    return NATIVE_FORMATS[library] if output == NATIVE_OUTPUT else "onnx"


def artifact_file(library: str, output: str) -> str:
    """The file name the train step writes, which the later steps and the store use:
    the one Triton looks for in a version folder of that format."""
    if output == NATIVE_OUTPUT:
        return FIL_MODEL_FILES[NATIVE_MODEL_TYPES[library]]
    return FORMATS["onnx"].model_file


def fil_settings(library: str, task: str, output: str) -> dict[str, str | bool] | None:
    """The `fil` block a published native version carries: the file's type, and for a
    classifier a probability per class (FIL returns indices or scores, never labels)."""
    if output != NATIVE_OUTPUT:
        return None
    classifier = task_family(task) == CLASSIFICATION
    return {
        "model_type": NATIVE_MODEL_TYPES[library],
        "output_class": classifier,
        "predict_proba": classifier,
    }
