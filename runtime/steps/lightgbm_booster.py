"""LightGBM through its own Booster API (`lgb.train`), as the two estimators the built-in
trainer's pipeline fits.

LightGBM's scikit-learn wrapper (LGBMClassifier) cannot be used: NannyML 0.13 pins
lightgbm < 4.6, and the wrapper of those versions passes scikit-learn >= 1.8 the removed
`force_all_finite`. `lgb.train` takes numpy arrays and needs none of scikit-learn, so
these classes give it the fit / predict / predict_proba surface the trainer uses. They
train on one thread with LightGBM's deterministic mode, so the same data and seed give
the same model text; the features are named (`feature_names`) so that the file says
what it reads, as the compiler checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin


class LightGBMEstimator(BaseEstimator):  # type: ignore[misc]
    """The parameters both estimators take, in scikit-learn's names where one exists."""

    def __init__(
        self,
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        num_leaves: int = 31,
        max_depth: int = -1,
        min_child_samples: int = 20,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        reg_alpha: float = 0.0,
        reg_lambda: float = 0.0,
        random_state: int = 0,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_alpha = reg_alpha
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.feature_names = feature_names

    def _settings(self, objective: dict[str, Any]) -> dict[str, Any]:
        return {
            **objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample,
            # LightGBM bags only with a frequency: every iteration when subsampling.
            "bagging_freq": 1 if self.subsample < 1.0 else 0,
            "feature_fraction": self.colsample_bytree,
            "lambda_l1": self.reg_alpha,
            "lambda_l2": self.reg_lambda,
            "seed": self.random_state,
            # Reproducible bytes: one thread, LightGBM's deterministic mode, and row-wise
            # histograms (the col-wise choice depends on a timing LightGBM measures).
            "num_threads": 1,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }

    def _train(self, x: Any, y: np.ndarray, objective: dict[str, Any]) -> None:
        import lightgbm

        matrix = np.asarray(x, dtype=np.float64)
        names = list(self.feature_names) if self.feature_names else "auto"
        data = lightgbm.Dataset(matrix, label=y, feature_name=names, free_raw_data=True)
        self.booster_ = lightgbm.train(
            self._settings(objective), data, num_boost_round=self.n_estimators
        )

    def _scores(self, x: Any) -> np.ndarray:
        scores: np.ndarray = self.booster_.predict(np.asarray(x, dtype=np.float64), num_threads=1)
        return scores


class LightGBMClassifier(ClassifierMixin, LightGBMEstimator):  # type: ignore[misc]
    def fit(self, x: Any, y: np.ndarray) -> LightGBMClassifier:
        self.classes_, indices = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"the target holds {len(self.classes_)} class; two are needed")
        if len(self.classes_) == 2:
            objective: dict[str, Any] = {"objective": "binary"}
        else:
            objective = {"objective": "multiclass", "num_class": len(self.classes_)}
        self._train(x, indices, objective)
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        scores = self._scores(x)
        return np.column_stack([1.0 - scores, scores]) if scores.ndim == 1 else scores

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(x), axis=1)])


class LightGBMRegressor(RegressorMixin, LightGBMEstimator):  # type: ignore[misc]
    def fit(self, x: Any, y: np.ndarray) -> LightGBMRegressor:
        self._train(x, np.asarray(y, dtype=np.float64), {"objective": "regression"})
        return self

    def predict(self, x: Any) -> np.ndarray:
        return self._scores(x)
