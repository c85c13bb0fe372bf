"""runtime/monitor/compare.py on captured partitions of real traffic: NannyML's car-loan
analysis period scored by the example's ONNX model (tests/captured_data.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from runtime.contract import quality as contract
from runtime.monitor import compare
from tests.captured_data import TIMESTAMP, car_loan_rows, score, write_captured

NOW = datetime(2026, 12, 7, 12, 30, tzinfo=UTC)
WINDOW_S = 3600
HALF = 5000


@pytest.fixture(scope="module")
def scored() -> pd.DataFrame:
    return score(car_loan_rows().head(2 * HALF))


@pytest.fixture(scope="module")
def broken() -> pd.DataFrame:
    return score(car_loan_rows().head(2 * HALF), broken=True)


def _args(captured: Path, *extra: str) -> list[str]:
    return [
        "--captured", str(captured), "--model", "car-loan-default", "--environment", "staging",
        "--version", "2", "--task", "binary_classification", "--timestamp", TIMESTAMP,
        "--prediction", "y_pred", "--score", "y_pred_proba", "--window", str(WINDOW_S),
        "--now", NOW.isoformat(), *extra,
    ]  # fmt: skip


def _run(captured: Path, tmp_path: Path, *extra: str) -> dict[str, object]:
    out = tmp_path / "measured.json"
    assert compare.main([*_args(captured, *extra), "--out", str(out)]) == contract.EXIT_MEASURED
    result: dict[str, object] = json.loads(out.read_text(encoding="utf-8"))
    return result


def _canary(tmp_path: Path, stable: pd.DataFrame, new: pd.DataFrame) -> Path:
    """Requests split between the versions over the last hour: the first half of the rows
    answered by the stable version, the second half by the new one."""
    captured = tmp_path / "captured"
    start = NOW - timedelta(seconds=WINDOW_S - 1)
    step = (WINDOW_S - 2) / HALF
    write_captured(captured, "staging", 1, stable.head(HALF), start, step)
    write_captured(captured, "staging", 2, new.iloc[HALF:], start, step)
    return captured


def test_the_same_model_on_other_requests_shifts_little(
    tmp_path: Path, scored: pd.DataFrame
) -> None:
    captured = _canary(tmp_path, scored, scored)
    measured = _run(captured, tmp_path, "--min-rows", "1000", "--distance", "jensen_shannon")
    assert measured["stable_version"] == 1 and measured["new_rows"] == HALF
    assert measured["enough"] is True
    shift = measured["values"][contract.SHIFT]  # type: ignore[index]
    assert 0 < shift < 0.05


def test_a_broken_version_shifts_far_by_every_classifier_distance(
    tmp_path: Path, scored: pd.DataFrame, broken: pd.DataFrame
) -> None:
    captured = _canary(tmp_path, scored, broken)
    fine = _canary(tmp_path / "fine", scored, scored)
    for distance in contract.CLASSIFIER_DISTANCES:
        bad = _run(captured, tmp_path, "--min-rows", "1000", "--distance", distance)
        good = _run(fine, tmp_path, "--min-rows", "1000", "--distance", distance)
        bad_shift = bad["values"][contract.SHIFT]  # type: ignore[index]
        good_shift = good["values"][contract.SHIFT]  # type: ignore[index]
        assert bad_shift > 5 * good_shift, (distance, bad_shift, good_shift)
        if distance == "jensen_shannon":  # the example spec's ceiling tells them apart
            assert good_shift < 0.1 < bad_shift


def test_too_few_rows_measure_nothing_and_push_only_the_count(
    tmp_path: Path, scored: pd.DataFrame
) -> None:
    captured = _canary(tmp_path, scored, scored)
    measured = _run(captured, tmp_path, "--min-rows", str(HALF + 1), "--distance", "psi")
    assert measured["enough"] is False and measured["rows"] == HALF
    assert measured["values"] == {}
    result = compare.Measurement(2, 1, HALF, HALF, HALF, False)
    text = compare.exposition(result, "car-loan-default", "staging", NOW)
    assert contract.ROWS in text and contract.MEASURED_AT in text
    assert contract.SHIFT not in text


def test_no_stable_version_in_the_window_is_zero_rows(tmp_path: Path, scored: pd.DataFrame) -> None:
    captured = tmp_path / "captured"
    write_captured(captured, "staging", 2, scored.head(2000), NOW - timedelta(minutes=30), 0.5)
    measured = _run(captured, tmp_path, "--min-rows", "10", "--distance", "psi")
    assert measured["stable_version"] is None and measured["rows"] == 0
    assert measured["enough"] is False


def test_an_empty_store_is_zero_rows_not_an_error(tmp_path: Path) -> None:
    measured = _run(tmp_path / "nothing", tmp_path, "--min-rows", "10", "--distance", "psi")
    assert measured["rows"] == 0 and measured["enough"] is False


def test_rows_outside_the_window_and_other_environments_are_left_out(
    tmp_path: Path, scored: pd.DataFrame
) -> None:
    captured = _canary(tmp_path, scored, scored)
    # Two hours earlier (other partitions) and another environment in the same hours.
    write_captured(captured, "staging", 2, scored.head(3000), NOW - timedelta(hours=3), 1.0)
    write_captured(captured, "production", 2, scored.head(3000), NOW - timedelta(minutes=50), 0.5)
    measured = _run(captured, tmp_path, "--min-rows", "10", "--distance", "psi")
    assert measured["new_rows"] == HALF and measured["stable_rows"] == HALF


def _shadow(tmp_path: Path, stable: pd.DataFrame, new: pd.DataFrame) -> Path:
    """The same requests mirrored to both versions (the same request ids), a retry of the
    first 100 answered twice by the new version."""
    captured = tmp_path / "captured"
    start = NOW - timedelta(minutes=50)
    write_captured(captured, "staging", 1, stable.head(HALF), start, 0.5)
    retried = pd.concat([new.head(HALF), new.head(100)], ignore_index=True)
    write_captured(captured, "staging", 2, retried, start, 0.5)
    return captured


def test_shadow_of_the_same_model_agrees_fully(tmp_path: Path, scored: pd.DataFrame) -> None:
    captured = _shadow(tmp_path, scored, scored)
    measured = _run(captured, tmp_path, "--min-rows", "1000", "--shadow")
    assert measured["rows"] == HALF  # joined by request id, the retry counted once
    values = measured["values"]
    assert values == {contract.AGREEMENT: 1.0, contract.MEAN_ABS_DIFFERENCE: 0.0}


def test_shadow_of_a_broken_version_disagrees(
    tmp_path: Path, scored: pd.DataFrame, broken: pd.DataFrame
) -> None:
    captured = _shadow(tmp_path, scored, broken)
    measured = _run(captured, tmp_path, "--min-rows", "1000", "--shadow", "--distance", "psi")
    values = measured["values"]
    head = scored.head(HALF)
    expected_agreement = float((head["y_pred"] == broken.head(HALF)["y_pred"]).mean())
    expected_mad = float((head["y_pred_proba"] - broken.head(HALF)["y_pred_proba"]).abs().mean())
    assert values[contract.AGREEMENT] == pytest.approx(expected_agreement)  # type: ignore[index]
    assert values[contract.MEAN_ABS_DIFFERENCE] == pytest.approx(expected_mad)  # type: ignore[index]
    assert values[contract.AGREEMENT] < 0.95  # type: ignore[index]
    assert contract.SHIFT in values  # type: ignore[operator]


def test_shadow_below_min_rows_of_joined_requests_is_inconclusive(
    tmp_path: Path, scored: pd.DataFrame
) -> None:
    # Both versions answered plenty, but different requests: nothing to join.
    captured = tmp_path / "captured"
    start = NOW - timedelta(minutes=50)
    write_captured(captured, "staging", 1, scored.head(HALF), start, 0.5)
    write_captured(captured, "staging", 2, scored.iloc[HALF:], start, 0.5)
    measured = _run(captured, tmp_path, "--min-rows", "10", "--shadow")
    assert measured["rows"] == 0 and measured["enough"] is False and measured["values"] == {}


def test_regression_distances_on_values(tmp_path: Path) -> None:
    import numpy as np

    from runtime.monitor import distances

    rng = np.random.default_rng(0)
    stable = pd.Series(rng.normal(20000, 5000, 4000))
    same = pd.Series(rng.normal(20000, 5000, 4000))
    moved = stable + 5000  # one standard deviation up
    assert distances.continuous(same, stable, "wasserstein") < 0.1
    assert distances.continuous(moved, stable, "wasserstein") == pytest.approx(1.0, rel=0.05)
    assert distances.continuous(same, stable, "ks") < 0.05
    assert distances.continuous(moved, stable, "ks") > 0.3


def test_an_unreadable_file_fails_the_measurement(tmp_path: Path, scored: pd.DataFrame) -> None:
    captured = _canary(tmp_path, scored, scored)
    bad = next(captured.rglob("*.parquet"))
    bad.write_bytes(b"not parquet")
    code = compare.main(_args(captured, "--min-rows", "10", "--distance", "psi"))
    assert code == contract.EXIT_FAILED


def test_a_multiclass_model_is_compared_by_labels_and_all_its_scores(tmp_path: Path) -> None:
    """NannyML's multiclass set: its analysis period's own predictions (three classes)."""
    import os

    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
    import nannyml as nml

    _, analysis, _ = nml.load_synthetic_multiclass_classification_dataset()
    scores = [c for c in analysis.columns if c.startswith("y_pred_proba_")]
    rows = analysis[["y_pred", *scores]].head(2 * HALF).reset_index(drop=True)
    rows.insert(0, "request_id", [f"req-{i}" for i in range(len(rows))])
    # A new version that calls every upmarket card a highstreet card.
    wrong = rows.assign(y_pred=rows["y_pred"].replace("upmarket_card", "highstreet_card"))
    captured = tmp_path / "captured"
    start = NOW - timedelta(minutes=50)
    write_captured(captured, "staging", 1, rows.head(HALF), start, 0.5)
    write_captured(captured, "staging", 2, wrong.head(HALF), start, 0.5)
    args = _args(captured, "--min-rows", "100", "--shadow", "--distance", "jensen_shannon")
    args[args.index("--task") + 1] = "multiclass_classification"
    args[args.index("--score") + 1] = ",".join(scores)
    out = tmp_path / "measured.json"
    assert compare.main([*args, "--out", str(out)]) == contract.EXIT_MEASURED
    values = json.loads(out.read_text(encoding="utf-8"))["values"]
    upmarket = float((rows.head(HALF)["y_pred"] == "upmarket_card").mean())
    assert values[contract.AGREEMENT] == pytest.approx(1 - upmarket)
    assert values[contract.MEAN_ABS_DIFFERENCE] == 0.0  # the scores are the same
    assert values[contract.SHIFT] > 0.1  # every upmarket label moved to another class
