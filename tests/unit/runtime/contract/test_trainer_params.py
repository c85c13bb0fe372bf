"""The trainer's parameter rules held against the real libraries: for every parameter of
every estimator, values around each bound and of other types are tried; a value the rule
admits must be taken by the library (scikit-learn's validation, or a real fit for XGBoost
and Kiln's LightGBM wrapper), and a value it refuses must be refused by the library too.
Two exceptions, both deliberate: a boolean is never taken for a number, which
scikit-learn would read as 0 or 1; and a range a library documents but does not enforce
is still Kiln's (DOCUMENTED_ONLY)."""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np
import pytest

from runtime.contract.trainer_params import Choice, Range, Rule, admits, describe, param_rule
from runtime.contract.trainers import ESTIMATORS, Estimator, ParamValue

ROWS = np.random.default_rng(0).normal(size=(60, 3))
LABELS = (ROWS[:, 0] > 0).astype(int)
NAMES = ["a", "b", "c"]
# XGBoost's parameter reference gives (0, 1]; XGBoost 2.1 trains with 0 all the same.
DOCUMENTED_ONLY = {("xgboost", "subsample", 0), ("xgboost", "colsample_bytree", 0)}


def _around(alternative: Range | Choice) -> list[ParamValue]:
    if isinstance(alternative, Choice):
        return [*alternative.values]
    found: list[ParamValue] = []
    for bound in (alternative.low, alternative.high):
        if math.isfinite(bound):
            found += [int(bound), float(bound), bound - 1, bound + 1, bound + 0.5, bound - 0.5]
    return found


def candidates(rule: Rule) -> list[ParamValue]:
    """Values on, just inside and just outside every bound, and of every other type."""
    values: list[ParamValue] = [2, 0.5, -1, 7.25, True, None, "sqrt", "no_such_name"]
    for alternative in rule:
        values += _around(alternative)
    unique: dict[tuple[str, str], ParamValue] = {}
    for value in values:
        if isinstance(value, float) and value.is_integer() and abs(value) > 1e6:
            continue
        unique.setdefault((type(value).__name__, repr(value)), value)
    return list(unique.values())


def _class(path: str) -> Any:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def library_takes(estimator: Estimator, family: str, name: str, value: ParamValue) -> bool:
    cls = _class(estimator.classes[family])
    try:
        if estimator.library == "sklearn":
            cls(**{name: value})._validate_params()
            return True
        settings: dict[str, Any] = {"n_estimators": 2, name: value}
        if estimator.library == "lightgbm":
            settings["feature_names"] = NAMES
        cls(**settings).fit(ROWS, LABELS if family == "classification" else ROWS[:, 1])
    except Exception:  # each library's own error types: all mean "refused"
        return False
    return True


CASES = [
    (estimator, family, name)
    for estimator in ESTIMATORS
    for family in estimator.classes
    for name in sorted(estimator.params)
]


@pytest.mark.parametrize(
    ("estimator", "family", "name"),
    CASES,
    ids=[f"{e.key}-{f}-{n}" for e, f, n in CASES],
)
def test_every_rule_agrees_with_its_library(estimator: Estimator, family: str, name: str) -> None:
    rule = param_rule(estimator.library, estimator.name, family, name)
    assert rule is not None, f"{estimator.key} takes {name} but no rule says what value"
    disagree = []
    for value in candidates(rule):
        if isinstance(value, bool) and not admits(rule, value):
            continue  # Kiln's own strictness (the module docstring)
        if (estimator.library, name, value) in DOCUMENTED_ONLY:
            assert not admits(rule, value)
            continue
        if admits(rule, value) != library_takes(estimator, family, name, value):
            disagree.append(f"{value!r} (rule: {describe(rule)})")
    assert disagree == []
