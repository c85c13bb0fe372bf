"""What value each parameter of the built-in trainer's estimators takes: its type and, where
the library documents one, its range. The compiler checks a spec's `training.trainer.params`
against these rules (KILN1747), so a value the library would refuse fails at compile time
rather than in a training pod.

Each rule is the library's own: scikit-learn's `_parameter_constraints` (1.9), XGBoost's
parameter reference (2.1, and the lower bound its C++ declares for `max_bin`) and
LightGBM's parameter constraints (4.5, through the names Kiln's Booster wrapper maps,
runtime/steps/lightgbm_booster.py). `tests/unit/runtime/contract/test_trainer_params.py`
holds every rule against the real libraries: a value a rule admits trains, a value it
refuses is refused by the library too, except XGBoost's `subsample` and
`colsample_bytree` of 0, outside the range (0, 1] its reference documents, which XGBoost
2.1 does not enforce. Where a library documents no range, only the type is checked
(XGBoost's `n_estimators`, LightGBM's `max_depth`, whose `<= 0` means no limit).
A number for a parameter of whole numbers must be written as one (`10`, not `10.0`), as
scikit-learn and LightGBM require; a boolean is never taken for a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from runtime.contract.trainers import ParamValue

INF = math.inf


@dataclass(frozen=True)
class Range:
    """A number: `int` (whole numbers only), `real` (any number) or `fraction` (a number
    written with a point: scikit-learn's RealNotInt), between `low` and `high`."""

    kind: Literal["int", "real", "fraction"]
    low: float = -INF
    high: float = INF
    low_open: bool = False  # low itself is excluded
    high_open: bool = False

    def admits(self, value: ParamValue) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if (self.kind == "int" and not isinstance(value, int)) or (
            self.kind == "fraction" and not isinstance(value, float)
        ):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        what = "an integer" if self.kind == "int" else "a number"
        if self.kind == "fraction":
            what = "a number with a decimal point"
        if self.low == -INF and self.high == INF:
            return what
        if self.high == INF:
            return f"{what} {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.low == -INF:
            return f"{what} {'<' if self.high_open else '<='} {_number(self.high)}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{what} in {left}{_number(self.low)}, {_number(self.high)}{right}"


@dataclass(frozen=True)
class Choice:
    """One of a few values: names, true/false, or null."""

    values: tuple[ParamValue, ...]

    def admits(self, value: ParamValue) -> bool:
        # `1 == True` in Python: a value must also have the type of the one it equals.
        return any(type(value) is type(v) and value == v for v in self.values)

    def __str__(self) -> str:
        return " or ".join(_shown(v) for v in self.values)


Rule = tuple[Range | Choice, ...]  # a value is admitted when one alternative admits it


def admits(rule: Rule, value: ParamValue) -> bool:
    return any(alternative.admits(value) for alternative in rule)


def describe(rule: Rule) -> str:
    return ", or ".join(str(alternative) for alternative in rule)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _shown(value: ParamValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


BOOL = Choice((True, False))
NULL = Choice((None,))
COUNT = Range("int", 1)  # 1, 2, ...
NON_NEGATIVE = Range("real", 0)
POSITIVE = Range("real", 0, low_open=True)
SHARE = Range("real", 0, 1, low_open=True)  # (0, 1]

# scikit-learn (sklearn.utils._param_validation constraints of each class).
_TREE: dict[str, Rule] = {
    "max_depth": (COUNT, NULL),
    "min_samples_leaf": (COUNT, Range("fraction", 0, 1, low_open=True, high_open=True)),
    "min_samples_split": (Range("int", 2), Range("fraction", 0, 1, low_open=True)),
    "max_leaf_nodes": (Range("int", 2), NULL),
}
SKLEARN: dict[str, Rule] = {
    "C": (POSITIVE,),
    "max_iter": (COUNT,),  # HistGradientBoosting's; the linear models' are below
    "tol": (NON_NEGATIVE,),
    "fit_intercept": (BOOL,),
    "class_weight": (Choice(("balanced",)), NULL),
    "solver": (Choice(("lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga")),),
    "alpha": (NON_NEGATIVE,),
    **_TREE,
    "n_estimators": (COUNT,),
    "max_features": (COUNT, Range("fraction", 0, 1, low_open=True), Choice(("sqrt", "log2")), NULL),
    "bootstrap": (BOOL,),
    "learning_rate": (NON_NEGATIVE,),  # GradientBoosting's; HistGradientBoosting's below
    "subsample": (SHARE,),
    "l2_regularization": (NON_NEGATIVE,),
    "max_bins": (Range("int", 2, 255),),
    "early_stopping": (Choice(("auto",)), BOOL),
    "n_iter_no_change": (COUNT,),
    "validation_fraction": (Range("fraction", 0, 1, low_open=True, high_open=True), COUNT, NULL),
}
# Where one estimator's rule differs from the name's usual one.
SKLEARN_BY_ESTIMATOR: dict[str, dict[str, Rule]] = {
    "logistic_regression": {"max_iter": (Range("int", 0),)},
    "ridge": {"max_iter": (COUNT, NULL)},
    "hist_gradient_boosting": {"learning_rate": (POSITIVE,), "min_samples_leaf": (COUNT,)},
}
# A forest's split criterion depends on what it predicts.
CRITERION: dict[str, Rule] = {
    "classification": (Choice(("gini", "entropy", "log_loss")),),
    "regression": (Choice(("squared_error", "absolute_error", "poisson")),),
}

# XGBoost (doc/parameter.rst: "range: [0, inf]" and the like).
XGBOOST_RULES: dict[str, Rule] = {
    "n_estimators": (Range("int"),),
    "learning_rate": (NON_NEGATIVE,),
    "max_depth": (Range("int", 0),),
    "min_child_weight": (NON_NEGATIVE,),
    "subsample": (SHARE,),
    "colsample_bytree": (SHARE,),
    "reg_alpha": (NON_NEGATIVE,),
    "reg_lambda": (NON_NEGATIVE,),
    "gamma": (NON_NEGATIVE,),
    "max_bin": (Range("int", 2),),
}

# Every parameter of XGBoost's scikit-learn wrapper defaults to None: the library's default.
XGBOOST: dict[str, Rule] = {name: (*rule, NULL) for name, rule in XGBOOST_RULES.items()}

# LightGBM (docs/Parameters.rst constraints), by the wrapper's scikit-learn names. null
# leaves a parameter to LightGBM's default, except the two the wrapper reads itself.
LIGHTGBM: dict[str, Rule] = {
    "n_estimators": (COUNT,),  # lgb.train wants at least one round
    "learning_rate": (POSITIVE, NULL),
    "num_leaves": (Range("int", 2, 131072), NULL),  # 1 < num_leaves <= 131072
    "max_depth": (Range("int"), NULL),
    "min_child_samples": (Range("int", 0), NULL),  # min_data_in_leaf >= 0
    "subsample": (SHARE,),  # bagging_fraction
    "colsample_bytree": (SHARE, NULL),  # feature_fraction
    "reg_alpha": (NON_NEGATIVE, NULL),  # lambda_l1
    "reg_lambda": (NON_NEGATIVE, NULL),  # lambda_l2
}


def param_rule(library: str, estimator: str, family: str, name: str) -> Rule | None:
    """The rule for one parameter of an estimator fitted for a task family, or None for a
    name the estimator does not take (trainers.Estimator.params decides that)."""
    if library == "xgboost":
        return XGBOOST.get(name)
    if library == "lightgbm":
        return LIGHTGBM.get(name)
    if name == "criterion":
        return CRITERION[family]
    return SKLEARN_BY_ESTIMATOR.get(estimator, {}).get(name) or SKLEARN.get(name)
