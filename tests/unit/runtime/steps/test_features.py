"""Tests for runtime/steps/features.py and runtime/examples/example_data.py (whose files it
reads)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from ruamel.yaml import YAML

from tests.tools import REPO_ROOT

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
import nannyml

from runtime.examples import example_data
from runtime.steps import features

FEATURES = [
    "car_value",
    "salary_range",
    "debt_to_income_ratio",
    "loan_length",
    "repaid_loan_on_prev_car",
    "size_of_downpayment",
    "driver_tenure",
]
ROWS = 2000


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    """The first ROWS rows of NannyML's car-loan reference period (already in time order)."""
    return nannyml.load_synthetic_car_loan_dataset()[0].head(ROWS).copy()


@pytest.fixture()
def source(tmp_path: Path, reference: pd.DataFrame) -> Path:
    path = tmp_path / "src" / "reference.parquet"
    path.parent.mkdir()
    reference.to_parquet(path, index=False)
    return path


def argv(source: str | Path, out: Path, *extra: str) -> list[str]:
    return [
        "--source",
        str(source),
        "--entity",
        "id",
        "--timestamp",
        "timestamp",
        "--columns",
        ",".join(FEATURES),
        "--target",
        "repaid",
        "--out",
        str(out),
        *extra,
    ]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_writes_snapshot_digest_and_row_count(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert features.main(argv(source, out)) == 0
    frame = pd.read_parquet(out / "features.parquet")
    assert list(frame.columns) == ["id", "timestamp", *FEATURES, "repaid"]
    assert len(frame) == ROWS
    assert str(frame["timestamp"].dtype) == "datetime64[us, UTC]"
    # Source dtypes are kept: the bool feature stays bool (training casts it to 0/1).
    assert frame["repaid_loan_on_prev_car"].dtype == bool
    assert frame["timestamp"].is_monotonic_increasing
    assert (out / "sha256").read_text() == sha256(out / "features.parquet") + "\n"
    assert (out / "rows").read_text() == f"{ROWS}\n"
    assert (out / "source_sha256").read_text() == sha256(source) + "\n"


def test_same_inputs_same_bytes_whatever_the_row_order(
    source: Path, tmp_path: Path, reference: pd.DataFrame
) -> None:
    assert features.main(argv(source, tmp_path / "a")) == 0
    assert features.main(argv(source, tmp_path / "b")) == 0
    shuffled = tmp_path / "shuffled.parquet"
    reference.sample(frac=1.0, random_state=1).to_parquet(shuffled, index=False)
    assert features.main(argv(shuffled, tmp_path / "c")) == 0
    first = (tmp_path / "a" / "features.parquet").read_bytes()
    assert (tmp_path / "b" / "features.parquet").read_bytes() == first
    # Sorting by (timestamp, entity) makes the output independent of the source's order.
    assert (tmp_path / "c" / "features.parquet").read_bytes() == first


def test_pinned_sha256_is_checked(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = sha256(source)
    assert features.main(argv(source, tmp_path / "ok", "--sha256", good.upper())) == 0
    wrong = "0" * 64
    assert features.main(argv(source, tmp_path / "bad", "--sha256", wrong)) == 1
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: source ")
    assert good in message and wrong in message
    assert not (tmp_path / "bad" / "features.parquet").exists()


def test_missing_columns_are_listed(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argv(source, tmp_path / "out")
    args[args.index("--columns") + 1] = "car_value,no_such,also_missing"
    assert features.main(args) == 1
    err = capsys.readouterr().err
    assert "lacks column(s) no_such, also_missing" in err
    assert "car_value" in err  # the columns it does have are listed too


def test_point_in_time_snapshot(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "id": [1, 2, 1, 3, 2, 1],
            "timestamp": [
                "2024-01-01T00:00:00",
                "2024-01-01T00:00:00",
                "2024-01-02T00:00:00",
                "2024-01-03T00:00:00",
                "2024-01-04T00:00:00+01:00",  # 23:00 UTC on the 3rd
                "2024-01-05T00:00:00",  # after --as-of
            ],
            "x": [10.0, 20.0, 11.0, 30.0, 21.0, 12.0],
            "y": [0, 1, 0, 1, 1, 0],
        }
    )
    source = tmp_path / "events.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "out"
    args = ["--source", str(source), "--entity", "id", "--timestamp", "timestamp"]
    args += ["--columns", "x", "--target", "y", "--as-of", "2024-01-04", "--out", str(out)]
    assert features.main(args) == 0
    result = pd.read_parquet(out / "features.parquet")
    # Latest row per entity known at the as-of time, ordered by (timestamp, id).
    assert result["id"].tolist() == [1, 3, 2]
    assert result["x"].tolist() == [11.0, 30.0, 21.0]
    assert str(result["timestamp"].iloc[2]) == "2024-01-03 23:00:00+00:00"


def test_as_of_now_leaves_out_future_rows_and_records_the_moment(tmp_path: Path) -> None:
    now = pd.Timestamp.now(tz="UTC")
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "timestamp": [
                str(now - pd.Timedelta(days=2)),
                str(now - pd.Timedelta(hours=1)),
                str(now + pd.Timedelta(days=1)),
            ],  # stamped in the future
            "x": [1.0, 2.0, 3.0],
            "y": [0, 1, 0],
        }
    )
    source = tmp_path / "rows.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "out"
    args = ["--source", str(source), "--entity", "id", "--timestamp", "timestamp"]
    args += ["--columns", "x", "--target", "y", "--as-of", "now", "--out", str(out)]
    assert features.main(args) == 0
    assert pd.read_parquet(out / "features.parquet")["id"].tolist() == [1, 2]
    recorded = pd.Timestamp((out / "as_of").read_text().strip())
    assert now.floor("s") <= recorded <= pd.Timestamp.now(tz="UTC")
    assert recorded.tzinfo is not None


def test_folder_source_and_manifest_digest(
    tmp_path: Path, reference: pd.DataFrame, source: Path
) -> None:
    folder = tmp_path / "parts"
    (folder / "day=2").mkdir(parents=True)
    reference.iloc[:1000].to_parquet(folder / "part-0.parquet", index=False)
    reference.iloc[1000:].to_parquet(folder / "day=2" / "part-1.parquet", index=False)
    (folder / "_SUCCESS").write_text("")  # markers are not data
    manifest = "".join(
        f"{sha256(folder / name)}  {name}\n" for name in ["day=2/part-1.parquet", "part-0.parquet"]
    )
    digest = hashlib.sha256(manifest.encode()).hexdigest()
    out = tmp_path / "out"
    assert features.main(argv(f"{folder}/", out, "--sha256", digest)) == 0
    single = tmp_path / "single"
    assert features.main(argv(source, single)) == 0
    # The same rows split across files give the same snapshot.
    assert (out / "sha256").read_text() == (single / "sha256").read_text()


def test_object_store_source_through_fsspec(tmp_path: Path, reference: pd.DataFrame) -> None:
    memory = fsspec.filesystem("memory")
    with memory.open("/kiln-test/car-loan/part-0.parquet", "wb") as handle:
        reference.to_parquet(handle, index=False)
    try:
        assert features.main(argv("memory://kiln-test/car-loan/", tmp_path / "out")) == 0
    finally:
        memory.rm("/kiln-test", recursive=True)
    assert (tmp_path / "out" / "rows").read_text() == f"{ROWS}\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--source", "/no/such/place.parquet"], "does not exist"),
        (["--as-of", "yesterday-ish"], "is not an ISO 8601 timestamp"),
        (["--format", "csv"], "holds no csv files"),
        (["--as-of", "1999-01-01"], "has no rows at or before --as-of 1999-01-01 00:00:00+00:00"),
    ],
)
def test_bad_inputs_exit_1_with_one_line(
    source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: list[str],
    message: str,
) -> None:
    args = argv(source.parent, tmp_path / "out")
    if change[0] == "--source":
        args[args.index("--source") + 1] = change[1]
    else:
        args += change
    assert features.main(args) == 1
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_module_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.steps.features",
            *argv(tmp_path / "nothing", tmp_path / "o"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith("error: source ")
    assert "Traceback" not in completed.stderr


# ------------------------------------------------------------------- example data


def test_example_data_is_complete_and_deterministic(tmp_path: Path) -> None:
    assert example_data.main(["--out", str(tmp_path / "a")]) == 0
    assert example_data.main(["--out", str(tmp_path / "b"), "--dataset", "car-loan"]) == 0
    written = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*"))
    assert written == [
        "car-loan",
        "car-loan/analysis.parquet",
        "car-loan/applications",
        "car-loan/applications/reference.parquet",
        "car-loan/reference.parquet",
        "car-price",
        "car-price/analysis.parquet",
        "car-price/listings",
        "car-price/listings/reference.parquet",
        "car-price/reference.parquet",
    ]
    # Each example FeatureSet's source holds rows: the folder its spec names.
    for spec in (REPO_ROOT / "specs" / "featuresets").glob("*.yaml"):
        source = YAML(typ="safe").load(spec)["spec"]["source"]["uri"]
        assert list((tmp_path / "a" / source).glob("*.parquet")), source
    for name in ("car-loan/reference.parquet", "car-loan/analysis.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    analysis = pd.read_parquet(tmp_path / "a" / "car-price" / "analysis.parquet")
    assert analysis["y_true"].notna().all() and len(analysis) == 60_000
    loans = pd.read_parquet(tmp_path / "a" / "car-loan" / "analysis.parquet")
    assert {"repaid", "y_pred_proba", "timestamp"} <= set(loans.columns)
