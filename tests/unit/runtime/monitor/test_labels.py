"""Labels written by `kiln label` and joined by the monitor onto the analysis rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from compiler.cli.monitor import label
from runtime.contract.monitor_config import Labels
from runtime.local.labels import LabelError, write_labels
from runtime.monitor.labels import join_labels, read_labels

ROOT = Path(__file__).resolve().parents[4]


class Config:
    """The one field join_labels reads of a MonitorConfig."""

    class columns:
        target = "repaid"


def test_later_labels_win_and_rows_without_one_stay_unlabelled(tmp_path: Path) -> None:
    folder = tmp_path / "labels"
    first = tmp_path / "first.csv"
    pd.DataFrame({"request_id": ["a", "b"], "repaid": [0, 0]}).to_csv(first, index=False)
    second = tmp_path / "second.parquet"
    pd.DataFrame({"request_id": ["b"], "repaid": [1], "other": [9]}).to_parquet(second)
    assert write_labels(first, "request_id", "repaid", folder)[1] == 2
    assert write_labels(second, "request_id", "repaid", folder)[1] == 1
    frame = pd.DataFrame({"request_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    notes: list[str] = []
    joined = join_labels(Config(), Labels(uri=str(folder), key="request_id"), frame, notes)  # type: ignore[arg-type]
    assert joined["repaid"].tolist()[:2] == [0, 1] and pd.isna(joined["repaid"].iloc[2])
    assert notes == ["labels joined by 'request_id': 2 of 3 rows labelled"]


def test_no_labels_yet_is_a_note(tmp_path: Path) -> None:
    labels = Labels(uri=str(tmp_path / "none"), key="request_id")
    assert read_labels(labels, "repaid") is None
    notes: list[str] = []
    frame = pd.DataFrame({"request_id": ["a"]})
    assert "repaid" not in join_labels(Config(), labels, frame, notes).columns  # type: ignore[arg-type]
    assert "no labels" in notes[0]


def test_a_file_without_the_key_is_refused_by_name(tmp_path: Path) -> None:
    source = tmp_path / "truth.csv"
    pd.DataFrame({"id": [1], "repaid": [1]}).to_csv(source, index=False)
    with pytest.raises(LabelError, match="lacks the column\\(s\\) 'request_id'"):
        write_labels(source, "request_id", "repaid", tmp_path / "labels")


def test_kiln_label_writes_into_the_local_data_store(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    import shutil

    shutil.copytree(ROOT / "specs", specs, ignore=shutil.ignore_patterns("artifacts"))
    shutil.copytree(ROOT / "specs" / "artifacts", specs / "artifacts")
    source = tmp_path / "truth.csv"
    pd.DataFrame({"request_id": ["r1", "r2"], "repaid": [1, 0]}).to_csv(source, index=False)
    result = CliRunner().invoke(
        label, ["car-loan-default", "--from", str(source), "--specs", str(specs)]
    )
    assert result.exit_code == 0, result.output
    parts = list((tmp_path / ".kiln" / "data" / "car-loan-default" / "labels").glob("*.parquet"))
    assert len(parts) == 1
    assert pd.read_parquet(parts[0])["repaid"].tolist() == [1, 0]
    refused = CliRunner().invoke(
        label,
        ["car-loan-default", "--from", str(source), "--specs", str(specs), "--env", "staging"],
    )
    assert refused.exit_code == 2 and "cluster environment" in refused.output


def test_a_file_keyed_by_another_column_is_written_under_the_join_column(tmp_path: Path) -> None:
    """`kiln label --key rid`: the file's request ids are written as `request_id`, the
    column the monitor joins served traffic on, so the next monitor run can read them."""
    source = tmp_path / "truth.csv"
    pd.DataFrame({"rid": ["a", "b"], "repaid": [1, 0]}).to_csv(source, index=False)
    written, rows = write_labels(source, "rid", "repaid", tmp_path / "labels", "request_id")
    assert rows == 2
    assert list(pd.read_parquet(written).columns) == ["request_id", "repaid"]
    labels = read_labels(Labels(uri=str(tmp_path / "labels"), key="request_id"), "repaid")
    assert labels is not None and sorted(labels["request_id"]) == ["a", "b"]
