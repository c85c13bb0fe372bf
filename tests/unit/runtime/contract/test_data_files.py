"""One rule for which files of a data folder are data (runtime/contract/data_files.py),
as the features step, the monitor, batch scoring and the rollout comparison apply it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from runtime.contract.data_files import hidden_below
from runtime.monitor.compare import read_window
from runtime.serving.batch import input_files


def test_markers_below_the_folder_are_hidden_the_folders_own_path_is_not() -> None:
    folder = "/p/.kiln/data/m/in"
    assert not hidden_below(f"{folder}/part-0.parquet", folder)
    assert hidden_below(f"{folder}/_SUCCESS", folder)
    assert hidden_below(f"{folder}/_temporary/run/part-0.parquet", folder)
    assert hidden_below(f"{folder}/date=1/.part-1.parquet", folder)


def test_batch_scoring_reads_an_input_under_the_local_data_store(tmp_path: Path) -> None:
    """The local data store is `.kiln/data`: its own hidden name must not hide the input."""
    folder = tmp_path / ".kiln" / "data" / "in"
    folder.mkdir(parents=True)
    pd.DataFrame({"x": [1.0]}).to_parquet(folder / "part-0.parquet")
    (folder / "_SUCCESS").write_text("{}")
    _, files, fmt = input_files(str(folder), None)
    assert fmt == "parquet"
    assert [Path(f).name for f in files] == ["part-0.parquet"]


def test_the_rollout_comparison_skips_a_capture_part_still_being_written(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    hour = tmp_path / "environment=staging" / "version=2" / f"date={now:%Y-%m-%d}"
    hour = hour / f"hour={now:%H}"
    hour.mkdir(parents=True)
    stamps = pd.DatetimeIndex([now - timedelta(seconds=1)]).as_unit("us")
    frame = pd.DataFrame(
        {"request_id": ["r1"], "timestamp": stamps, "model_version": [2], "y_pred": [1]}
    )
    frame.to_parquet(hour / "part-1.parquet")
    (hour / ".part-2.parquet").write_bytes(b"PAR1 half written")  # not parquet yet
    rows = read_window(
        str(tmp_path), "staging", ["y_pred"], now - timedelta(minutes=5), now, "timestamp"
    )
    assert list(rows["request_id"]) == ["r1"]
