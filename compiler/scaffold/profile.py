"""What a data file holds, column by column: the facts `kiln new` infers specs from.

Only a sample is read (the first `SAMPLE_ROWS` rows), so that a large file costs no
more than a small one; the inference rules need types, counts, bounds and the
distinct values of low-cardinality columns, which a sample gives. pyarrow reads both
formats and is imported here only, inside the functions, so `kiln compile` never
loads it. Nothing here echoes the file's contents in an error: a data file may hold
what its author would not want printed in a CI log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

SAMPLE_ROWS = 100_000
# Distinct values are kept (sorted) up to this many; beyond it only the count matters.
DISTINCT_KEPT = 200

ColumnKind = Literal["integer", "float", "bool", "string", "datetime", "other"]
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class DataFileError(Exception):
    """A data file that cannot be profiled; the message names the file and what to do."""


@dataclass(frozen=True)
class ColumnProfile:
    """One column of the sample."""

    name: str
    kind: ColumnKind
    arrow_type: str
    nulls: int  # missing values, NaN included
    distinct_count: int  # exact up to DISTINCT_KEPT + 1, then "more"
    distinct: tuple[Any, ...] | None  # sorted, when at most DISTINCT_KEPT
    minimum: float | None = None  # numeric columns
    maximum: float | None = None
    integral: bool = False  # numeric, and every value a whole number
    infinite: bool = False  # a float column holding +-inf
    unique: bool = False  # no missing value and no value twice: an id column can be


@dataclass(frozen=True)
class TableProfile:
    """The sample of one file."""

    path: Path
    format: str
    rows: int
    columns: tuple[ColumnProfile, ...]

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name == name), None)


def data_format(path: Path) -> str:
    """csv or parquet, from the file's suffix (`.csv.gz` is a compressed CSV)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-2:] in ([".csv", ".gz"], [".csv", ".bz2"]):
        return "csv"
    found = FORMATS.get(suffixes[-1] if suffixes else "")
    if found is None:
        raise DataFileError(
            f"{path}: Kiln reads CSV (.csv, .csv.gz) and Parquet (.parquet, .pq) files; "
            "convert the file or rename it to its format's suffix"
        )
    return found


def profile_file(path: Path, sample_rows: int = SAMPLE_ROWS) -> TableProfile:
    """Read up to `sample_rows` rows of `path` and describe each column."""
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    fmt = data_format(path)
    table = _read_sample(path, fmt, sample_rows)
    if table.num_columns == 0 or table.num_rows == 0:
        raise DataFileError(f"{path}: the file holds no rows; Kiln infers types from the data")
    names = table.column_names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataFileError(
            f"{path}: column {quoted(repeated[0])} appears more than once; "
            "give every column its own name"
        )
    columns = tuple(_profile_column(name, table.column(name)) for name in names)
    return TableProfile(path, fmt, table.num_rows, columns)


def _read_sample(path: Path, fmt: str, sample_rows: int) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    batches: list[Any] = []
    count = 0
    try:
        if fmt == "parquet":
            reader: Any = pq.ParquetFile(path).iter_batches(batch_size=min(sample_rows, 65_536))
            schema = pq.read_schema(path)
        else:
            reader = pa_csv.open_csv(path)
            schema = reader.schema
        for batch in reader:
            batches.append(batch)
            count += batch.num_rows
            if count >= sample_rows:
                break
    except (pa.ArrowException, OSError, ValueError) as error:
        # pyarrow's messages quote the offending row; say what failed, not what it read.
        raise DataFileError(
            f"{path}: cannot be read as {fmt.upper()} ({type(error).__name__}); check that "
            f"it is a well-formed {fmt.upper()} file with a header row"
        ) from None
    table = pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()
    return table.slice(0, sample_rows)


def _profile_column(name: str, column: Any) -> ColumnProfile:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    kind = _kind(column.type)
    if kind == "float":
        column = column.cast(pa.float64())
    nulls = column.null_count
    if kind == "float":
        nans = pc.sum(pc.is_nan(column)).as_py() or 0
        nulls += nans
        column = pc.filter(column, pc.invert(pc.is_nan(column)))
    present = pc.drop_null(column)
    if kind == "other":  # nested and binary types: only their presence matters
        return ColumnProfile(name, kind, str(column.type), nulls, min(len(present), 1), None)
    unique = pc.unique(present)
    values = None
    if len(unique) <= DISTINCT_KEPT:
        values = tuple(sorted(v for v in unique.to_pylist()))
    facts: dict[str, Any] = {}
    if kind in ("integer", "float") and len(present):
        infinite = kind == "float" and bool(pc.any(pc.is_inf(present)).as_py())
        finite = pc.filter(present, pc.is_finite(present)) if kind == "float" else present
        bounds = pc.min_max(finite).as_py() if len(finite) else {"min": None, "max": None}
        facts = {
            "minimum": None if bounds["min"] is None else float(bounds["min"]),
            "maximum": None if bounds["max"] is None else float(bounds["max"]),
            "integral": kind == "integer" or _all_whole(finite),
            "infinite": infinite,
        }
    return ColumnProfile(
        name=name,
        kind=kind,
        arrow_type=str(column.type),
        nulls=nulls,
        distinct_count=min(len(unique), DISTINCT_KEPT + 1),
        distinct=values,
        unique=nulls == 0 and len(unique) == len(present),
        **facts,
    )


def _kind(arrow_type: Any) -> ColumnKind:
    import pyarrow as pa

    types = pa.types
    if types.is_boolean(arrow_type):
        return "bool"
    if types.is_integer(arrow_type):
        return "integer"
    if types.is_floating(arrow_type) or types.is_decimal(arrow_type):
        return "float"
    if types.is_string(arrow_type) or types.is_large_string(arrow_type):
        return "string"
    if types.is_timestamp(arrow_type) or types.is_date(arrow_type):
        return "datetime"
    return "other"


def _all_whole(values: Any) -> bool:
    import pyarrow.compute as pc

    return len(values) == 0 or bool(pc.all(pc.equal(pc.floor(values), values)).as_py())


def quoted(name: str) -> str:
    """A column name as a message shows it: repr, so that control characters stay visible."""
    return repr(name) if len(name) <= 80 else repr(name[:77] + "...")
