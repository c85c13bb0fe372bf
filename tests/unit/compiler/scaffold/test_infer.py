"""`kiln new`'s inference rules, one test per rule, on files pyarrow writes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from compiler.scaffold.infer import FEW_NUMBERS, FEW_STRINGS, InferenceError, feature_of, infer
from compiler.scaffold.profile import DataFileError, profile_file

ROWS = 60
START = dt.datetime(2024, 1, 1)


def _base(rows: int = ROWS) -> dict[str, list[Any]]:
    return {
        "id": list(range(rows)),
        "ts": [START + dt.timedelta(hours=i) for i in range(rows)],
        "label": [i % 2 for i in range(rows)],
    }


def _parquet(tmp_path: Path, columns: dict[str, list[Any]]) -> Path:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def _feature(tmp_path: Path, values: list[Any], name: str = "x") -> Any:
    columns = _base(len(values))
    columns[name] = values
    table = profile_file(_parquet(tmp_path, columns))
    column = table.column(name)
    assert column is not None
    return feature_of(column)


def test_whole_numbers_with_few_values_are_int64_categories(tmp_path: Path) -> None:
    feature = _feature(tmp_path, [i % FEW_NUMBERS for i in range(ROWS)])
    assert (feature.dtype, feature.kind) == ("int64", "categorical")
    assert feature.values == tuple(range(FEW_NUMBERS))


def test_whole_floats_with_few_values_are_int64_categories_too(tmp_path: Path) -> None:
    feature = _feature(tmp_path, [float(2 + i % 4) for i in range(ROWS)])
    assert (feature.dtype, feature.kind, feature.values) == ("int64", "categorical", (2, 3, 4, 5))


def test_many_whole_numbers_are_continuous_with_the_sample_range(tmp_path: Path) -> None:
    feature = _feature(tmp_path, [i * 7 for i in range(ROWS)])
    assert (feature.dtype, feature.kind) == ("float32", "continuous")
    assert feature.range == (0.0, (ROWS - 1) * 7.0)


def test_fractions_are_continuous_even_when_few(tmp_path: Path) -> None:
    feature = _feature(tmp_path, [0.5 if i % 2 else 1.5 for i in range(ROWS)])
    assert (feature.dtype, feature.kind, feature.range) == ("float32", "continuous", (0.5, 1.5))


def test_strings_are_categories_listed_when_few(tmp_path: Path) -> None:
    feature = _feature(tmp_path, ["b", "a", "c"] * (ROWS // 3))
    assert (feature.dtype, feature.kind, feature.values) == (
        "string",
        "categorical",
        ("a", "b", "c"),
    )


def test_many_strings_are_categories_without_a_list_and_a_note(tmp_path: Path) -> None:
    rows = FEW_STRINGS + 10
    feature = _feature(tmp_path, [f"s{i}" for i in range(rows)])
    assert (feature.kind, feature.values) == ("categorical", None)
    assert "60 distinct values" in feature.notes[0]


def test_booleans_are_zero_one_int64_categories(tmp_path: Path) -> None:
    feature = _feature(tmp_path, [i % 3 == 0 for i in range(ROWS)])
    assert (feature.dtype, feature.kind, feature.values) == ("int64", "categorical", (0, 1))
    assert "bool in the data" in feature.notes


def test_nulls_and_nans_are_counted_as_missing(tmp_path: Path) -> None:
    values: list[Any] = [float(i) * 1.5 for i in range(ROWS)]
    values[3], values[4] = None, float("nan")
    feature = _feature(tmp_path, values)
    assert feature.range == (0.0, (ROWS - 1) * 1.5)
    assert "2 missing in the sample" in feature.notes


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ([None] * ROWS, "has no value in the sample"),
        ([START] * ROWS, "holds dates or times"),
        ([float("inf")] + [1.5] * (ROWS - 1), "holds infinite values"),
        ([[1, 2]] * ROWS, "is of type list"),
    ],
)
def test_refused_columns_are_named_with_what_to_do(
    tmp_path: Path, values: list[Any], said: str
) -> None:
    with pytest.raises(InferenceError, match=said) as caught:
        _feature(tmp_path, values)
    assert "'x'" in str(caught.value) and "--exclude x" in str(caught.value)


def test_roles_are_detected_and_every_other_column_is_a_feature(tmp_path: Path) -> None:
    columns = _base()
    columns["income"] = [1000.5 * i for i in range(ROWS)]
    inferred = infer(profile_file(_parquet(tmp_path, columns)), "binary_classification", "label")
    assert (inferred.roles.entity, inferred.roles.timestamp) == ("id", "ts")
    assert [f.name for f in inferred.features] == ["income"]
    assert inferred.classes == (0, 1)


def test_excluded_columns_are_not_features(tmp_path: Path) -> None:
    columns = _base()
    columns["a"] = [1.25 * i for i in range(ROWS)]
    columns["bad name"] = [1.0] * ROWS
    table = profile_file(_parquet(tmp_path, columns))
    with pytest.raises(InferenceError, match="'bad name' is not a name"):
        infer(table, "binary_classification", "label")
    inferred = infer(table, "binary_classification", "label", exclude=("bad name",))
    assert [f.name for f in inferred.features] == ["a"]


@pytest.mark.parametrize(
    ("task", "target", "said"),
    [
        ("binary_classification", [1] * ROWS, "one class in the sample"),
        ("binary_classification", [i % 3 for i in range(ROWS)], "use --task multiclass"),
        ("multiclass_classification", [i % 2 for i in range(ROWS)], "use --task binary"),
        ("multiclass_classification", [i + 0.5 for i in range(ROWS)], "fractional numbers"),
        ("regression", ["a", "b"] * (ROWS // 2), "regression needs a numeric target"),
        ("regression", [i % 2 for i in range(ROWS)], "that is a label"),
    ],
)
def test_a_target_that_does_not_fit_the_task_is_refused(
    tmp_path: Path, task: Any, target: list[Any], said: str
) -> None:
    columns = _base()
    columns["label"] = target
    columns["x"] = [0.5 * i for i in range(ROWS)]
    with pytest.raises(InferenceError, match=said):
        infer(profile_file(_parquet(tmp_path, columns)), task, "label")


def test_string_classes_are_sorted_labels(tmp_path: Path) -> None:
    columns = _base()
    columns["label"] = ["low", "high", "mid"] * (ROWS // 3)
    columns["x"] = [0.5 * i for i in range(ROWS)]
    table = profile_file(_parquet(tmp_path, columns))
    inferred = infer(table, "multiclass_classification", "label")
    assert (inferred.classes, inferred.label_dtype) == (("high", "low", "mid"), "string")


def test_missing_role_columns_are_named_with_the_columns_there_are(tmp_path: Path) -> None:
    table = profile_file(_parquet(tmp_path, {**_base(), "x": [1.5] * ROWS}))
    with pytest.raises(InferenceError, match=r"--target 'price'.*it has id, ts, label, x"):
        infer(table, "regression", "price")
    with pytest.raises(InferenceError, match="'x' is double, not a date"):
        infer(table, "binary_classification", "label", timestamp="x")


def test_timestamp_and_id_must_be_unambiguous(tmp_path: Path) -> None:
    columns = {**_base(), "other_ts": [START] * ROWS, "user_id": list(range(ROWS))}
    table = profile_file(_parquet(tmp_path, columns))
    with pytest.raises(InferenceError, match="several date or time columns"):
        infer(table, "binary_classification", "label")
    with pytest.raises(InferenceError, match=r"several candidates \(id, user_id\)"):
        infer(table, "binary_classification", "label", timestamp="ts")
    inferred = infer(table, "binary_classification", "label", "ts", "user_id", ("other_ts",))
    assert inferred.roles.entity == "user_id" and [f.name for f in inferred.features] == ["id"]
    with pytest.raises(InferenceError, match="no column is left to be a feature"):
        infer(table, "binary_classification", "label", "ts", "user_id", ("other_ts", "id"))


def test_csv_is_read_with_its_types(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    columns = {**_base(), "city": ["x", "y"] * (ROWS // 2), "ok": [True, False] * (ROWS // 2)}
    pa_csv.write_csv(pa.table(columns), path)
    table = profile_file(path)
    kinds = {c.name: c.kind for c in table.columns}
    assert kinds == {
        "id": "integer",
        "ts": "datetime",
        "label": "integer",
        "city": "string",
        "ok": "bool",
    }
    assert (table.format, table.rows) == ("csv", ROWS)


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("data.csv", b"", "cannot be read as CSV"),
        ("data.csv", b"a,b\n", "holds no rows"),
        ("data.csv", b"a,b\n1,2\n3\n", "cannot be read as CSV"),
        ("data.parquet", b"not parquet", "cannot be read as PARQUET"),
        ("data.xlsx", b"", "reads CSV"),
    ],
)
def test_unreadable_files_are_refused_without_echoing_them(
    tmp_path: Path, name: str, content: bytes, said: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=said) as caught:
        profile_file(path)
    assert "1,2" not in str(caught.value) and "not parquet" not in str(caught.value)


def test_only_the_sample_is_read(tmp_path: Path) -> None:
    path = _parquet(tmp_path, {**_base(500), "x": [0.5 * i for i in range(500)]})
    table = profile_file(path, sample_rows=100)
    column = table.column("x")
    assert table.rows == 100 and column is not None and column.maximum == 49.5
