"""Monitor configs and data for Kiln's example models, on NannyML's own data sets.

The configs mirror what `config_from_ir` renders for `specs/models/car-loan-default.yaml`
and `specs/models/car-price.yaml` (same FeatureSets, columns and methods), without a
lookback and with no routes; tests and the benchmark adjust them with `with_updates`.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from runtime.contract.monitor_config import MonitorConfig

CAR_LOAN_FEATURES: list[dict[str, Any]] = [
    {"name": "car_value", "dtype": "float32", "kind": "continuous", "range": {"min": 0}},
    {
        "name": "salary_range",
        "dtype": "string",
        "kind": "categorical",
        "values": ["0 - 20K €", "20K - 40K €", "40K - 60K €", "60K+ €"],
    },
    {
        "name": "debt_to_income_ratio",
        "dtype": "float32",
        "kind": "continuous",
        "range": {"min": 0, "max": 1},
    },
    {"name": "loan_length", "dtype": "float32", "kind": "continuous", "range": {"min": 1}},
    # bool in NannyML's data; the FeatureSet (and the model) take int64 0/1
    {"name": "repaid_loan_on_prev_car", "dtype": "int64", "kind": "categorical", "values": [0, 1]},
    {
        "name": "size_of_downpayment",
        "dtype": "string",
        "kind": "categorical",
        "values": ["0%", "10%", "20%", "30%", "40%"],
    },
    {"name": "driver_tenure", "dtype": "float32", "kind": "continuous", "range": {"min": 0}},
]

CAR_PRICE_FEATURES: list[dict[str, Any]] = [
    {"name": "car_age", "dtype": "float32", "kind": "continuous", "range": {"min": 0}},
    {"name": "km_driven", "dtype": "float32", "kind": "continuous", "range": {"min": 0}},
    {"name": "price_new", "dtype": "float32", "kind": "continuous", "range": {"min": 0}},
    {"name": "accident_count", "dtype": "float32", "kind": "continuous", "range": {"min": 0}},
    {
        "name": "door_count",
        "dtype": "float32",
        "kind": "continuous",
        "range": {"min": 2, "max": 5},
    },
    {
        "name": "fuel",
        "dtype": "string",
        "kind": "categorical",
        "values": ["diesel", "electric", "gas"],
    },
    {
        "name": "transmission",
        "dtype": "string",
        "kind": "categorical",
        "values": ["automatic", "manual"],
    },
]


def car_loan_config(**updates: Any) -> MonitorConfig:
    """car-loan-default: binary classification, CBPE, drift, data quality."""
    raw: dict[str, Any] = {
        "model": "car-loan-default",
        "environment": "local",
        "version": 1,
        "task": "binary_classification",
        "columns": {
            "timestamp": "timestamp",
            "prediction": "y_pred",
            "score": "y_pred_proba",
            "target": "repaid",
            "features": CAR_LOAN_FEATURES,
        },
        "reference": {"uri": "reference.parquet", "format": "parquet"},
        "analysis": {"uri": "analysis.parquet", "format": "parquet"},
        "chunking": {"size": 5000},
        "drift": {
            "univariate": {"continuous": ["jensen_shannon"], "categorical": ["chi2"]},
            "multivariate": {"method": "reconstruction_error"},
        },
        "performance": {"estimator": "cbpe", "metrics": ["roc_auc", "f1"]},
        "data_quality": {"missing_values": True, "unseen_values": True, "ranges": True},
    }
    raw.update(updates)
    return MonitorConfig.model_validate(raw)


def car_price_config(**updates: Any) -> MonitorConfig:
    """car-price: regression, DLE, drift."""
    raw: dict[str, Any] = {
        "model": "car-price",
        "environment": "local",
        "version": 1,
        "task": "regression",
        "columns": {
            "timestamp": "timestamp",
            "prediction": "y_pred",
            "target": "y_true",
            "features": CAR_PRICE_FEATURES,
        },
        "reference": {"uri": "reference.parquet", "format": "parquet"},
        "analysis": {"uri": "analysis.parquet", "format": "parquet"},
        "chunking": {"size": 6000},
        "drift": {"univariate": {"continuous": ["jensen_shannon"], "categorical": ["chi2"]}},
        "performance": {"estimator": "dle", "metrics": ["mae", "rmse"]},
    }
    raw.update(updates)
    return MonitorConfig.model_validate(raw)


def with_updates(config: MonitorConfig, **updates: Any) -> MonitorConfig:
    """A copy of `config` with top-level fields replaced, validated again."""
    raw = config.model_dump(mode="json", by_alias=True)
    raw.update(updates)
    return MonitorConfig.model_validate(raw)


def _nannyml() -> Any:
    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
    import nannyml

    return nannyml


def car_loan_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """NannyML's car-loan reference and analysis periods; analysis with its targets."""
    reference, analysis, targets = _nannyml().load_synthetic_car_loan_dataset()
    return reference, analysis.merge(targets, on="id")


def car_price_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """NannyML's car-price reference and analysis periods; analysis with its targets."""
    reference, analysis, targets = _nannyml().load_synthetic_car_price_dataset()
    return reference, analysis.merge(targets, on="id")
