"""The monitor reports what NannyML's Python API reports when called directly.

On NannyML's own synthetic data sets (car loan: binary classification with CBPE; car price:
regression with DLE), the job's drift alerts per feature and chunk and its performance
estimates equal those of the bare calculators with the same settings, and a held-out slice
of the reference period raises no alert at all.

The direct calls get NannyML's data as NannyML ships it (bool `repaid_loan_on_prev_car`,
text timestamps); the job reads the same rows from parquet and applies the FeatureSet
(int64 0/1), which must not change any result.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml as nml

from runtime.examples.monitor_examples import (
    car_loan_config,
    car_loan_frames,
    car_price_config,
    car_price_frames,
)
from runtime.monitor.job import Progress, run_job
from runtime.monitor.output import Run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread() -> Iterator[None]:
    """LightGBM (inside DLE) on a busy 2-core machine: its OpenMP threads wait on each
    other and a 1 s fit takes 40 s. One thread gives the same numbers (checked: identical
    estimates) in a steady time, for the job and the direct calls alike."""
    with threadpool_limits(1, user_api="openmp"):
        yield


HOOK = [{"name": "hook", "webhook": {"url": "http://127.0.0.1:9/never"}}]
LOAN_CATEGORICAL = ["salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"]
LOAN_CONTINUOUS = ["car_value", "debt_to_income_ratio", "loan_length", "driver_tenure"]
PRICE_CATEGORICAL = ["fuel", "transmission"]
PRICE_CONTINUOUS = ["car_age", "km_driven", "price_new", "accident_count", "door_count"]


def _rule(name: str, signal: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "signal": signal, "severity": "warning", "route": "hook", **extra}


def _files(tmp: Path, reference: pd.DataFrame, analysis: pd.DataFrame) -> dict[str, Any]:
    reference.to_parquet(tmp / "reference.parquet")
    analysis.to_parquet(tmp / "analysis.parquet")
    return {
        "reference": {"uri": str(tmp / "reference.parquet"), "format": "parquet"},
        "analysis": {"uri": str(tmp / "analysis.parquet"), "format": "parquet"},
    }


def _run(config: Any, out: Path) -> Run:
    return run_job(config, out, progress=Progress(None), deliver=False)


def _univariate(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    continuous: list[str],
    categorical: list[str],
    size: int,
) -> pd.DataFrame:
    calc = nml.UnivariateDriftCalculator(
        column_names=continuous + categorical,
        treat_as_numerical=continuous,
        treat_as_categorical=categorical,
        timestamp_column_name="timestamp",
        continuous_methods=["jensen_shannon"],
        categorical_methods=["chi2"],
        chunk_size=size,
    ).fit(reference)
    return calc.calculate(analysis).filter(period="analysis").data


def _direct_drift_alerts(data: pd.DataFrame, features: list[str]) -> set[tuple[str, str]]:
    keys = data[("chunk", "chunk", "key")]
    found = set()
    for feature in features:
        method = "chi2" if (feature, "chi2", "alert") in data.columns else "jensen_shannon"
        for key, flag in zip(keys, data[(feature, method, "alert")], strict=True):
            if flag:
                found.add((feature, key))
    return found


def _kiln_values(run: Run, signal: str) -> pd.DataFrame:
    table = run.tables()[signal]
    return table[table["period"] == "analysis"]


# --- car loan: binary classification, CBPE ---------------------------------------------------


@pytest.fixture(scope="module")
def car_loan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, pd.DataFrame, pd.DataFrame]:
    reference, analysis = car_loan_frames()
    tmp = tmp_path_factory.mktemp("car-loan")
    config = car_loan_config(
        **_files(tmp, reference, analysis),
        alerts=[_rule("drift", "drift"), _rule("cbpe", "estimated_performance")],
        routes=HOOK,
    )
    return _run(config, tmp / "out"), reference, analysis


def test_car_loan_job_succeeds_and_reads_the_bool_column_as_int(car_loan: Any) -> None:
    run, _, _ = car_loan
    assert run.status == "alerts", run.error or [o.message for o in run.failed_calculators]
    assert run.reference is not None
    assert any("repaid_loan_on_prev_car" in note and "bool" in note for note in run.reference.notes)
    assert {o.name for o in run.outcomes} == {
        "univariate_drift",
        "multivariate_drift",
        "estimated_performance",
        "realized_performance",
        "missing_values",
        "unseen_values",
        "range",
    }


def test_car_loan_drift_alerts_equal_nannyml(car_loan: Any) -> None:
    run, reference, analysis = car_loan
    direct = _univariate(reference, analysis, LOAN_CONTINUOUS, LOAN_CATEGORICAL, 5000)
    expected = _direct_drift_alerts(direct, LOAN_CONTINUOUS + LOAN_CATEGORICAL)
    got = {(e.feature, e.chunk_key) for e in run.events if e.name == "drift"}
    assert expected, "the car-loan analysis period drifts; NannyML should flag it"
    assert got == expected

    kiln = _kiln_values(run, "drift")
    for feature in LOAN_CONTINUOUS + LOAN_CATEGORICAL:
        method = "chi2" if feature in LOAN_CATEGORICAL else "jensen_shannon"
        mine = kiln[(kiln["subject"] == feature) & (kiln["method"] == method)]
        np.testing.assert_allclose(
            mine["value"].to_numpy(), direct[(feature, method, "value")].to_numpy(), rtol=1e-12
        )
        assert list(mine["chunk_key"]) == list(direct[("chunk", "chunk", "key")])


def test_car_loan_cbpe_estimates_equal_nannyml(car_loan: Any) -> None:
    run, reference, analysis = car_loan
    calc = nml.CBPE(
        metrics=["roc_auc", "f1"],
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true="repaid",
        problem_type="classification_binary",
        timestamp_column_name="timestamp",
        chunk_size=5000,
    ).fit(reference)
    direct = calc.estimate(analysis).filter(period="analysis").data
    kiln = _kiln_values(run, "estimated_performance")
    expected_alerts = set()
    for metric in ("roc_auc", "f1"):
        mine = kiln[kiln["subject"] == metric]
        np.testing.assert_allclose(
            mine["value"].to_numpy(), direct[(metric, "value")].to_numpy(), rtol=1e-12
        )
        np.testing.assert_allclose(
            mine["lower_threshold"].to_numpy(),
            direct[(metric, "lower_threshold")].astype(float).to_numpy(),
        )
        assert list(mine["alert"]) == [bool(a) for a in direct[(metric, "alert")]]
        for key, flag in zip(direct[("chunk", "key")], direct[(metric, "alert")], strict=True):
            if flag:
                expected_alerts.add((metric, key))
    assert {(e.metric, e.chunk_key) for e in run.events if e.name == "cbpe"} == expected_alerts


def test_car_loan_reconstruction_error_equals_nannyml(car_loan: Any) -> None:
    run, reference, analysis = car_loan
    # NannyML infers roles from dtypes here: as shipped, the bool column is categorical,
    # which is what the job makes of every declared categorical feature.
    calc = nml.DataReconstructionDriftCalculator(
        column_names=LOAN_CONTINUOUS + LOAN_CATEGORICAL,
        timestamp_column_name="timestamp",
        chunk_size=5000,
    ).fit(reference)
    direct = calc.calculate(analysis).filter(period="analysis").data
    kiln = _kiln_values(run, "multivariate_drift")
    np.testing.assert_allclose(
        kiln["value"].to_numpy(), direct[("reconstruction_error", "value")].to_numpy(), rtol=1e-9
    )
    assert list(kiln["alert"]) == [bool(a) for a in direct[("reconstruction_error", "alert")]]


def test_car_loan_held_out_reference_slice_raises_no_alert(
    tmp_path: Path,
) -> None:
    reference, _ = car_loan_frames()
    # The first 30,000 rows as reference, the remaining 20,000 of the same period as
    # analysis (with their targets): same distribution, so nothing may fire.
    config = car_loan_config(
        **_files(tmp_path, reference.iloc[:30000], reference.iloc[30000:]),
        alerts=[
            _rule(name, signal)
            for name, signal in (
                ("drift", "drift"),
                ("multivariate", "multivariate_drift"),
                ("estimated", "estimated_performance"),
                ("realized", "realized_performance"),
                ("missing", "missing_values"),
                ("unseen", "unseen_values"),
                ("range", "range"),
            )
        ],
        routes=HOOK,
    )
    run = _run(config, tmp_path / "out")
    assert run.status == "ok", [e.summary for e in run.events] or run.error
    assert run.exit_code == 0
    assert not run.events
    assert [o.status for o in run.outcomes] == ["ok"] * 7


# --- car price: regression, DLE --------------------------------------------------------------


@contextmanager
def _string_inference_off() -> Iterator[None]:
    """Bare NannyML 0.13's DLE needs string inference off on pandas 3 (see
    runtime/monitor/performance.py); pandas deprecates that option, but NannyML 0.13 has no
    other way, so its deprecation warning is expected here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The 'future.infer_string' option", DeprecationWarning)
        with pd.option_context("future.infer_string", False):
            yield


def _dle(reference: pd.DataFrame, analysis: pd.DataFrame, size: int) -> pd.DataFrame:
    with _string_inference_off():
        calc = nml.DLE(
            feature_column_names=PRICE_CONTINUOUS + PRICE_CATEGORICAL,
            y_pred="y_pred",
            y_true="y_true",
            metrics=["mae", "rmse"],
            timestamp_column_name="timestamp",
            chunk_size=size,
        ).fit(reference)
        return calc.estimate(analysis).filter(period="analysis").data


@pytest.fixture(scope="module")
def car_price(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, pd.DataFrame, pd.DataFrame]:
    reference, analysis = car_price_frames()
    tmp = tmp_path_factory.mktemp("car-price")
    config = car_price_config(
        **_files(tmp, reference, analysis),
        alerts=[_rule("drift", "drift"), _rule("dle", "estimated_performance")],
        routes=HOOK,
    )
    return _run(config, tmp / "out"), reference, analysis


def test_car_price_drift_alerts_equal_nannyml(car_price: Any) -> None:
    run, reference, analysis = car_price
    assert run.status == "alerts", run.error or [o.message for o in run.failed_calculators]
    direct = _univariate(reference, analysis, PRICE_CONTINUOUS, PRICE_CATEGORICAL, 6000)
    expected = _direct_drift_alerts(direct, PRICE_CONTINUOUS + PRICE_CATEGORICAL)
    assert expected
    assert {(e.feature, e.chunk_key) for e in run.events if e.name == "drift"} == expected


def test_car_price_dle_estimates_equal_nannyml(car_price: Any) -> None:
    run, reference, analysis = car_price
    direct = _dle(reference, analysis, 6000)
    kiln = _kiln_values(run, "estimated_performance")
    expected_alerts = set()
    for metric in ("mae", "rmse"):
        mine = kiln[kiln["subject"] == metric]
        np.testing.assert_allclose(
            mine["value"].to_numpy(), direct[(metric, "value")].to_numpy(), rtol=1e-9
        )
        assert list(mine["alert"]) == [bool(a) for a in direct[(metric, "alert")]]
        for key, flag in zip(direct[("chunk", "key")], direct[(metric, "alert")], strict=True):
            if flag:
                expected_alerts.add((metric, key))
    assert expected_alerts, "the car-price analysis period loses accuracy; DLE should see it"
    assert {(e.metric, e.chunk_key) for e in run.events if e.name == "dle"} == expected_alerts


def test_car_price_held_out_reference_slice_raises_no_alert(tmp_path: Path) -> None:
    reference, _ = car_price_frames()
    # Rows 30,000-48,000 of the reference period against the first 30,000. (The last
    # chunk of NannyML's car-price reference period drifts in `fuel` against the rest of
    # it, chi2 p < 0.05, so a slice ending there is not drift-free.)
    config = car_price_config(
        **_files(tmp_path, reference.iloc[:30000], reference.iloc[30000:48000]),
        alerts=[
            _rule("drift", "drift"),
            _rule("estimated", "estimated_performance"),
            _rule("realized", "realized_performance"),
        ],
        routes=HOOK,
    )
    run = _run(config, tmp_path / "out")
    assert run.status == "ok", [e.summary for e in run.events] or run.error
    assert not run.events
    assert [o.status for o in run.outcomes] == ["ok"] * 3
