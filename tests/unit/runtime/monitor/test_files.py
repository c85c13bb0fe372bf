"""Reading a data set's files: a folder of parquet parts read as one dataset, its hive
partition folders as columns, and the captured layout read one environment at a time."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from compiler.served import model_ir
from compiler.targets.monitor_config import config_from_ir
from runtime.contract import capture
from runtime.contract.monitor_config import DataSource
from runtime.examples.monitor_examples import car_loan_config, car_loan_frames
from runtime.monitor.data import load_dataset
from runtime.monitor.errors import MonitorError
from runtime.monitor.files import list_files, partition_keys, read_parquet

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def loan() -> pd.DataFrame:
    _, analysis = car_loan_frames()
    return analysis.head(6000).reset_index(drop=True)


def test_partition_folders_are_columns_and_a_stored_column_wins(tmp_path: Path) -> None:
    first = tmp_path / "environment=local" / "version=1" / "segment=a%2Fb"
    second = tmp_path / "environment=local" / "version=2" / "segment=c"
    for folder in (first, second):
        folder.mkdir(parents=True)
    pd.DataFrame({"x": [1, 2], "environment": ["stored", "stored"]}).to_parquet(first / "p.parquet")
    # A column one part lacks is missing there; int and float unify to float.
    pd.DataFrame({"x": [3.5], "environment": ["stored"], "y": ["q"]}).to_parquet(
        second / "p.parquet"
    )
    (second / ".p2.parquet").write_bytes(b"half written")  # skipped: hidden
    listing = list_files(str(tmp_path), "parquet", "analysis")
    assert partition_keys(listing.files[0], str(tmp_path)) == {
        "environment": "local",
        "version": "1",
        "segment": "a/b",
    }
    frame = read_parquet(listing, "analysis", ["x", "version", "segment", "environment"], ["y"])
    assert frame["x"].tolist() == [1.0, 2.0, 3.5]
    assert frame["version"].tolist() == [1, 1, 2]
    assert frame["segment"].tolist() == ["a/b", "a/b", "c"]
    assert frame["environment"].tolist() == ["stored"] * 3
    assert frame["y"].isna().tolist() == [True, True, False]


def test_a_required_column_in_neither_file_nor_path_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "day=1").mkdir()
    (tmp_path / "day=2").mkdir()
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "day=1" / "p.parquet")
    pd.DataFrame({"z": [1]}).to_parquet(tmp_path / "day=2" / "p.parquet")
    listing = list_files(str(tmp_path), "parquet", "analysis")
    assert read_parquet(listing, "analysis", ["day"], [])["day"].tolist() == [1, 2]
    with pytest.raises(MonitorError) as caught:
        read_parquet(listing, "analysis", ["x", "day"], [])
    where = tmp_path / "day=2" / "p.parquet"
    assert caught.value.message == (
        f"analysis data {where} lacks the declared column(s) 'x'; it has 2 column(s)"
    )


def _capture(loan: pd.DataFrame, data: Path, environment: str, rows: slice) -> None:
    """Rows as the capture step writes them: one part per hour partition."""
    part = loan.iloc[rows].copy()
    part["timestamp"] = pd.to_datetime(part["timestamp"]).dt.tz_localize("UTC")
    part[capture.REQUEST_ID] = [f"{environment}-{i}" for i in range(len(part))]
    part[capture.ENVIRONMENT] = environment
    part[capture.MODEL_VERSION] = 1
    when = datetime(2026, 12, 7, 5, tzinfo=UTC)
    folder = data / "car-loan-default" / capture.CAPTURED / capture.partition(environment, 1, when)
    folder.mkdir(parents=True)
    part.to_parquet(folder / "part-0.parquet", index=False)


def test_the_compiled_monitor_reads_its_own_environments_captured_rows(
    loan: pd.DataFrame, tmp_path: Path
) -> None:
    """Every environment captures into one folder; the local monitor's default analysis
    data is the local partition, so another environment's rows never reach it."""
    specs = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", specs)
    ir, _ = model_ir(specs, "car-loan-default", "local")
    config = config_from_ir(ir)
    data = tmp_path / "store"
    _capture(loan, data, "local", slice(0, 4000))
    _capture(loan, data, "production", slice(4000, 6000))
    uri = config.analysis.uri.replace(ir.storage.data, str(data), 1)
    source = DataSource(uri=uri, format="parquet")
    analysis = load_dataset(config.model_copy(update={"labels": None}), "analysis", source)
    assert analysis.rows == 4000
    whole = DataSource(uri=str(data / "car-loan-default" / capture.CAPTURED), format="parquet")
    assert load_dataset(car_loan_config(), "analysis", whole).rows == 6000
