"""Reading monitor data: formats, stores, the lookback window, and column checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from runtime.contract.monitor_config import DataSource
from runtime.examples.monitor_examples import car_loan_config, car_loan_frames, car_price_config
from runtime.monitor.data import MonitorError, apply_lookback, load_dataset


@pytest.fixture(scope="module")
def loan() -> pd.DataFrame:
    reference, _ = car_loan_frames()
    return reference.head(3000).copy()


def _load(
    frame: pd.DataFrame,
    tmp: Path,
    role: str = "reference",
    fmt: str = "parquet",
    config: Any = None,
    lookback: str | None = None,
) -> Any:
    path = tmp / f"data.{fmt}"
    frame.to_parquet(path) if fmt == "parquet" else frame.to_csv(path, index=False)
    config = config or car_loan_config()
    source = DataSource(uri=str(path), format=fmt, lookback=lookback)  # type: ignore[arg-type]
    return load_dataset(config, role, source)  # type: ignore[arg-type]


def _error(frame: pd.DataFrame, tmp: Path, **kwargs: Any) -> str:
    with pytest.raises(MonitorError) as caught:
        _load(frame, tmp, **kwargs)
    return caught.value.message


def test_parquet_and_csv_give_the_same_frame(loan: pd.DataFrame, tmp_path: Path) -> None:
    a = _load(loan, tmp_path, fmt="parquet").frame
    b = _load(loan, tmp_path, fmt="csv").frame
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert pd.api.types.is_datetime64_dtype(a["timestamp"])
    assert a["timestamp"].is_monotonic_increasing


def test_bool_feature_declared_int64_is_read_as_0_1(loan: pd.DataFrame, tmp_path: Path) -> None:
    data = _load(loan, tmp_path)
    column = data.frame["repaid_loan_on_prev_car"]
    assert column.dtype == object  # categorical for every NannyML calculator
    assert set(column) == {0, 1}
    assert any("is bool; read as int64 0/1" in note for note in data.notes)


def test_a_folder_of_files_and_an_fsspec_store(loan: pd.DataFrame, tmp_path: Path) -> None:
    import fsspec

    # Under a hidden folder, as the local data store (.kiln/data) is: only the files'
    # own names and the folders below `folder` count as hidden or markers.
    folder = tmp_path / ".kiln" / "parts"
    (folder / ".staging").mkdir(parents=True)
    loan.iloc[:1000].to_parquet(folder / "part-0.parquet")
    loan.iloc[1000:].to_parquet(folder / "part-1.parquet")
    loan.iloc[:10].to_parquet(folder / ".staging" / "part-2.parquet")
    (folder / "_SUCCESS").write_text("")
    config = car_loan_config()
    source = DataSource(uri=str(folder), format="parquet")
    data = load_dataset(config, "reference", source)
    assert (data.rows, len(data.files)) == (3000, 2)

    fs = fsspec.filesystem("memory")
    with fs.open("/bucket/reference.parquet", "wb") as handle:
        loan.to_parquet(handle)
    data = load_dataset(
        config, "reference", DataSource(uri="memory://bucket/reference.parquet", format="parquet")
    )
    assert data.rows == 3000


def test_lookback_is_relative_to_the_latest_timestamp() -> None:
    times = pd.date_range("2024-01-01", periods=10 * 24, freq="h")
    frame = pd.DataFrame({"ts": times, "x": np.arange(len(times))})
    kept = apply_lookback(frame, "ts", "2d")
    assert len(kept) == 48  # (latest - 2d, latest]
    assert kept["ts"].min() == times[-1] - pd.Timedelta(hours=47)
    assert len(apply_lookback(frame, "ts", "30d")) == len(frame)


def test_lookback_when_loading(loan: pd.DataFrame, tmp_path: Path) -> None:
    data = _load(loan, tmp_path, role="analysis", lookback="1d")
    times = data.frame["timestamp"]
    assert 0 < data.rows < data.rows_read == 3000
    assert times.max() - times.min() < pd.Timedelta(days=1)
    assert any(note.startswith("lookback 1d: kept") for note in data.notes)


def test_missing_column_names_it_and_suggests(loan: pd.DataFrame, tmp_path: Path) -> None:
    message = _error(loan.rename(columns={"car_value": "car_valu"}), tmp_path)
    assert "lacks the declared column(s) 'car_value' (did you mean 'car_valu'?)" in message


def test_target_is_required_in_the_reference_only(loan: pd.DataFrame, tmp_path: Path) -> None:
    assert "'repaid'" in _error(loan.drop(columns="repaid"), tmp_path)
    data = _load(loan.drop(columns="repaid"), tmp_path, role="analysis")
    assert "repaid" not in data.frame.columns


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(car_value=np.nan), "feature 'car_value' has no values: all 3000 rows"),
        (
            lambda f: f.assign(car_value=f["car_value"].astype(str)),
            "feature 'car_value' is declared continuous (float32) but holds str",
        ),
        (
            lambda f: f.assign(salary_range=1),
            "feature 'salary_range' is declared string but holds int64",
        ),
        (
            lambda f: f.assign(repaid_loan_on_prev_car=0.5),
            "feature 'repaid_loan_on_prev_car' is declared int64 but holds other values in "
            "3000 of 3000 rows",
        ),
        (
            lambda f: f.assign(y_pred_proba=f["y_pred_proba"] * 2),
            "score column 'y_pred_proba' holds values outside [0, 1]",
        ),
        (lambda f: f.assign(y_pred=2), "must hold the labels 0 and 1 for binary classification"),
        (lambda f: f.assign(timestamp="yesterday"), "is not an ISO 8601 date"),
        (lambda f: f.assign(timestamp=1.5), "holds float64 values; write timestamps as dates"),
        (lambda f: f.assign(repaid=1.0), "holds a single class (1.0) in all 3000 labelled rows"),
        (lambda f: f.assign(y_pred=np.nan), "prediction column 'y_pred' has 3000 missing values"),
    ],
)
def test_unusable_columns_fail_precisely(
    loan: pd.DataFrame, tmp_path: Path, change: Any, message: str
) -> None:
    assert message in _error(change(loan.copy()), tmp_path)


def test_empty_and_absent_data(loan: pd.DataFrame, tmp_path: Path) -> None:
    assert "has no rows" in _error(loan.head(0), tmp_path)
    config = car_loan_config()
    with pytest.raises(MonitorError, match="does not exist"):
        load_dataset(
            config, "analysis", DataSource(uri=str(tmp_path / "nope.parquet"), format="parquet")
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(MonitorError, match="is a folder without parquet files"):
        load_dataset(config, "analysis", DataSource(uri=str(tmp_path / "empty"), format="parquet"))


def test_regression_target_and_prediction_must_be_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=50, freq="h"),
            "car_age": 1.0,
            "km_driven": 2.0,
            "price_new": 3.0,
            "accident_count": 0.0,
            "door_count": 4.0,
            "fuel": "gas",
            "transmission": "manual",
            "y_pred": "cheap",
            "y_true": 5.0,
        }
    )
    message = _error(frame, tmp_path, config=car_price_config())
    assert "prediction column 'y_pred' holds str; regression needs numbers" in message


SECRET = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX"


def test_a_secret_read_as_data_is_never_echoed(tmp_path: Path) -> None:
    """A data location pointing at a mounted Secret: the job names what is missing and
    counts what is there; the file's text appears nowhere."""
    secret = tmp_path / "slack-webhook" / "url"
    secret.parent.mkdir()
    secret.write_text(SECRET + "\n", encoding="utf-8")
    source = DataSource(uri=str(secret), format="csv", lookback=None)
    with pytest.raises(MonitorError) as caught:
        load_dataset(car_loan_config(), "reference", source)
    message = caught.value.message
    assert "hooks.slack" not in message and "T0000" not in message
    assert "lacks the declared column(s)" in message and "it has 1 column(s)" in message


def test_bad_values_are_counted_not_shown(loan: pd.DataFrame, tmp_path: Path) -> None:
    frame = loan.assign(timestamp=["s3cret-token", *list(loan["timestamp"].astype(str))[1:]])
    message = _error(frame, tmp_path)
    assert "s3cret" not in message and "in 1 of 3000 rows" in message


def test_rows_are_in_time_order_numbered_from_zero_whether_sorted_or_not(
    loan: pd.DataFrame, tmp_path: Path
) -> None:
    """Sorted data is taken as it is, unsorted data sorted stably: the same frame."""
    ordered = loan.sort_values("timestamp", kind="stable").reset_index(drop=True)
    shuffled = ordered.sample(frac=1.0, random_state=0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    from_sorted = _load(ordered, tmp_path / "a").frame
    from_shuffled = _load(shuffled, tmp_path / "b").frame
    assert isinstance(from_sorted.index, pd.RangeIndex) and from_sorted.index.start == 0
    pd.testing.assert_frame_equal(from_sorted, from_shuffled)
