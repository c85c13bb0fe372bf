"""Labels written by `kiln label` and joined by the monitor onto the analysis rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from compiler.cli.monitor import label
from runtime.contract.monitor_config import Labels
from runtime.examples.monitor_examples import car_loan_config
from runtime.local.labels import LabelError, write_labels
from runtime.monitor.errors import MonitorError
from runtime.monitor.job import Progress, run_job
from runtime.monitor.labels import join_labels, read_labels

ROOT = Path(__file__).resolve().parents[4]
KEYS = [("request_id", "request_id")]


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
    assert write_labels(first, "repaid", folder, KEYS)[1] == 2
    assert write_labels(second, "repaid", folder, KEYS)[1] == 1
    frame = pd.DataFrame({"request_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    notes: list[str] = []
    joined = join_labels(Config(), Labels(uri=str(folder), keys=["request_id"]), frame, notes)  # type: ignore[arg-type]
    assert joined["repaid"].tolist()[:2] == [0, 1] and pd.isna(joined["repaid"].iloc[2])
    assert notes == ["labels joined (2 by 'request_id'): 2 of 3 rows labelled"]


def test_no_labels_yet_is_a_note(tmp_path: Path) -> None:
    labels = Labels(uri=str(tmp_path / "none"), keys=["request_id"])
    assert read_labels(labels, "repaid") is None
    notes: list[str] = []
    frame = pd.DataFrame({"request_id": ["a"]})
    assert "repaid" not in join_labels(Config(), labels, frame, notes).columns  # type: ignore[arg-type]
    assert "no labels" in notes[0]


def test_a_file_without_any_key_is_refused_by_name(tmp_path: Path) -> None:
    source = tmp_path / "truth.csv"
    pd.DataFrame({"id": [1], "repaid": [1]}).to_csv(source, index=False)
    keys = [*KEYS, ("customer_id", "customer_id")]
    with pytest.raises(LabelError, match="holds neither 'request_id' nor 'customer_id'"):
        write_labels(source, "repaid", tmp_path / "labels", keys)
    with pytest.raises(LabelError, match="lacks the column\\(s\\) 'rid'"):
        write_labels(source, "repaid", tmp_path / "labels", [("rid", "request_id")], "rid")


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
    # The FeatureSet's id column (car-loan-applicant: `id`) is a key too, kept by name.
    by_id = tmp_path / "by-id.csv"
    pd.DataFrame({"id": [7], "repaid": [1]}).to_csv(by_id, index=False)
    result = CliRunner().invoke(
        label, ["car-loan-default", "--from", str(by_id), "--specs", str(specs)]
    )
    assert result.exit_code == 0, result.output
    parts = sorted((tmp_path / ".kiln" / "data" / "car-loan-default" / "labels").glob("*.parquet"))
    assert pd.read_parquet(parts[-1]).to_dict("list") == {"id": ["7"], "repaid": [1]}


def test_a_file_keyed_by_another_column_is_written_under_the_join_column(tmp_path: Path) -> None:
    """`kiln label --key rid`: the file's request ids are written as `request_id`, the
    column the monitor joins served traffic on, so the next monitor run can read them."""
    source = tmp_path / "truth.csv"
    pd.DataFrame({"rid": ["a", "b"], "repaid": [1, 0]}).to_csv(source, index=False)
    written, rows = write_labels(source, "repaid", tmp_path / "labels", [("rid", "request_id")])
    assert rows == 2
    assert list(pd.read_parquet(written).columns) == ["request_id", "repaid"]
    labels = read_labels(Labels(uri=str(tmp_path / "labels"), keys=["request_id"]), "repaid")
    assert labels is not None and sorted(labels["request_id"]) == ["a", "b"]


# --- the FeatureSet's id column ------------------------------------------------------------


@pytest.fixture(scope="module")
def loan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """NannyML's car-loan periods: the analysis without its targets, and the targets
    apart, keyed by the data set's id column (the FeatureSet's entity)."""
    import nannyml as nml

    reference, analysis, targets = nml.load_synthetic_car_loan_dataset()
    folder = tmp_path_factory.mktemp("loan")
    reference.to_parquet(folder / "reference.parquet")
    analysis.head(20_000).to_parquet(folder / "analysis.parquet")
    return {"folder": folder, "analysis": analysis.head(20_000), "targets": targets}


def _config(folder: Path, analysis: Path, keys: list[str]) -> Any:
    return car_loan_config(
        reference={"uri": str(folder / "reference.parquet"), "format": "parquet"},
        analysis={"uri": str(analysis), "format": "parquet"},
        labels={"uri": str(folder / "labels"), "keys": keys},
        drift=None,
        data_quality=None,
    )


def _realised(run: Any) -> pd.DataFrame:
    outcome = next(o for o in run.outcomes if o.signal == "realized_performance")
    assert outcome.status == "ok", outcome.message
    return outcome.table


def test_a_file_joins_its_labels_by_the_featureset_id_column(
    loan: dict[str, Any], tmp_path: Path
) -> None:
    """`kiln label` with the data set's `id` column; the monitor joins it onto analysis
    rows read from a file, and realised performance equals that on the rows with their
    targets merged in (the half without a label stays unlabelled in both)."""
    folder, analysis, targets = loan["folder"], loan["analysis"], loan["targets"]
    labelled = targets[targets["id"].isin(analysis["id"].iloc[::2])]
    truth = tmp_path / "truth.csv"
    labelled.to_csv(truth, index=False)
    keys = [*KEYS, ("id", "id")]
    written, rows = write_labels(truth, "repaid", folder / "labels", keys)
    assert rows == 10_000 and list(pd.read_parquet(written).columns) == ["id", "repaid"]

    joined = run_job(
        _config(folder, folder / "analysis.parquet", ["id"]),
        tmp_path / "joined",
        progress=Progress(None),
        deliver=False,
    )
    assert joined.error is None and joined.analysis is not None
    assert "labels joined (10000 by 'id'): 10000 of 20000 rows labelled" in joined.analysis.notes

    merged = analysis.merge(labelled, on="id", how="left")
    merged.to_parquet(tmp_path / "merged.parquet")
    plain = _config(folder, tmp_path / "merged.parquet", ["id"]).model_copy(update={"labels": None})
    expected = run_job(plain, tmp_path / "plain", progress=Progress(None), deliver=False)
    pd.testing.assert_frame_equal(_realised(joined), _realised(expected))


def test_a_row_takes_its_request_ids_label_before_its_entitys(tmp_path: Path) -> None:
    folder = tmp_path / "labels"
    by_request = tmp_path / "requests.csv"
    pd.DataFrame({"request_id": ["r1"], "repaid": [1]}).to_csv(by_request, index=False)
    by_entity = tmp_path / "entities.csv"
    pd.DataFrame({"id": [7, 8], "repaid": [0, 0]}).to_csv(by_entity, index=False)
    keys = [*KEYS, ("id", "id")]
    write_labels(by_request, "repaid", folder, keys)
    write_labels(by_entity, "repaid", folder, keys)
    frame = pd.DataFrame({"request_id": ["r1", "r2", "r3"], "id": [7, 8, 9]})
    notes: list[str] = []
    labels = Labels(uri=str(folder), keys=["request_id", "id"])
    joined = join_labels(Config(), labels, frame, notes)  # type: ignore[arg-type]
    assert joined["repaid"].tolist()[:2] == [1, 0] and pd.isna(joined["repaid"].iloc[2])
    assert notes == ["labels joined (1 by 'request_id', 1 by 'id'): 2 of 3 rows labelled"]


def test_rows_without_any_key_are_refused_naming_the_columns(
    loan: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "labels"
    truth = tmp_path / "truth.csv"
    loan["targets"].head(10).to_csv(truth, index=False)
    write_labels(truth, "repaid", folder, [*KEYS, ("id", "id")])
    frame = loan["analysis"].drop(columns="id").head(10)
    if "repaid" in frame.columns:
        frame = frame.drop(columns="repaid")
    labels = Labels(uri=str(folder), keys=["request_id", "id"])
    with pytest.raises(MonitorError) as caught:
        join_labels(Config(), labels, frame, [])  # type: ignore[arg-type]
    assert caught.value.message == (
        f"the labels at {folder} are keyed by 'id', and the analysis rows carry none of the "
        "columns labels join on ('request_id', 'id'): add the FeatureSet's id column to the "
        "analysis data (batch predictions and captured inputs keep it), or label the served "
        "rows by request_id"
    )


def test_rows_with_their_own_target_keep_it_when_no_key_joins(
    loan: dict[str, Any], tmp_path: Path
) -> None:
    """Labels written for served traffic (by request id) do not stop the monitor of a
    file or of batch predictions that carry their own ground truth."""
    folder = tmp_path / "labels"
    served = tmp_path / "served.csv"
    pd.DataFrame({"request_id": ["r1", "r2"], "repaid": [1, 0]}).to_csv(served, index=False)
    write_labels(served, "repaid", folder, KEYS)
    frame = loan["analysis"].drop(columns="id").head(10).assign(repaid=1)
    notes: list[str] = []
    labels = Labels(uri=str(folder), keys=["request_id", "id"])
    joined = join_labels(Config(), labels, frame, notes)  # type: ignore[arg-type]
    assert joined["repaid"].tolist() == [1] * 10
    assert notes == [
        f"labels at {folder} are keyed by 'request_id', which the analysis rows do not "
        "carry: their own 'repaid' column is used"
    ]
