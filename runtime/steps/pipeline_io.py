"""Helpers shared by the training pipeline's steps (features, evaluate, validate_model, publish).

Each step is a plain ``python -m runtime.steps.<step>`` entry point. What they have in common lives
here: the error type that turns an expected failure into exit 1 and one line on stderr, JSON
arguments given inline or as a file, the model signature and the casting of data columns to
its input tensors, the time-ordered holdout split, and deterministic file writing.

The steps run in the runtime image from plain arguments; the compiler is not there.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from runtime.contract.arrays import FLOAT_DTYPES, INTEGER_DTYPES, NUMPY_TYPES
from runtime.contract.signature import Signature, SignatureError, Tensor, signature_from_document

# Rows per parquet row group. Fixed, so that the file layout never depends on a library
# default or on how the frame was assembled.
ROW_GROUP_ROWS = 65_536


class StepError(Exception):
    """An expected failure: the step prints the message on one line and exits 1."""


def run_main(body: Callable[[], int]) -> int:
    """Run a step's body; expected failures become `error: ...` and exit 1, no traceback."""
    try:
        return body()
    except StepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def progress(step: str, message: str) -> None:
    # flush: under Argo and the local runner stdout is a pipe; lines must appear as they happen.
    print(f"[{step}] {message}", flush=True)


# ------------------------------------------------------------------------- arguments


def json_argument(value: str, what: str) -> Any:
    """An inline JSON document (starting with `{` or `[`) or the path of a JSON file."""
    text = value.strip()
    if not text.startswith(("{", "[")):
        path = Path(value)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise StepError(f"cannot read {what} file {value}: {error.strerror}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise StepError(f"{what} is not valid JSON: {error}") from error


def comma_list(value: str) -> list[str]:
    """`a, b,,c` -> ["a", "b", "c"]."""
    return [part.strip() for part in value.split(",") if part.strip()]


def positive_ints(value: str, what: str) -> list[int]:
    try:
        numbers = [int(part) for part in comma_list(value)]
    except ValueError as error:
        raise StepError(f"{what} must be comma-separated integers, got {value!r}") from error
    if not numbers or any(n < 1 for n in numbers):
        raise StepError(f"{what} must be integers >= 1, got {value!r}")
    return numbers


# ------------------------------------------------------------------------- signature


def signature_argument(value: str) -> Signature:
    """--signature: a JSON file or an inline JSON object, as the compiler renders it."""
    try:
        return signature_from_document(json_argument(value, "signature"))
    except SignatureError as error:
        raise StepError(str(error)) from error


# ------------------------------------------------------------------------------ data


def read_parquet(path: str | Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise StepError(f"cannot read {path}: {error}") from error


def require_columns(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns))
        raise StepError(f"{where} lacks column(s) {', '.join(missing)} (it has: {have})")


def utc_timestamps(column: pd.Series, name: str) -> pd.Series:
    """Timestamps as tz-aware UTC; naive values are taken to be UTC already."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise StepError(
            f"timestamp column {name} has dtype {column.dtype}; expected timestamps "
            "or ISO 8601 strings"
        )
    try:
        parsed = pd.to_datetime(column, utc=True, format="ISO8601")
    except (ValueError, TypeError) as error:
        raise StepError(f"timestamp column {name}: {error}") from error
    return parsed.dt.as_unit("us")


def holdout_rows(total: int, holdout: float) -> int:
    """How many of `total` time-ordered rows are held out (at least one on each side)."""
    if not 0.0 < holdout < 1.0:
        raise StepError(f"holdout must be between 0 and 1 (exclusive), got {holdout}")
    if total < 2:
        raise StepError(f"need at least 2 rows to hold some out, got {total}")
    # round(), not int(): n * 0.2 may come out as 9999.999... for some n.
    return min(total - 1, max(1, round(total * holdout)))


def split_by_time(
    frame: pd.DataFrame, timestamp: str, holdout: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): the last `holdout` share of rows by timestamp is held out.

    The sort is stable, so rows with equal timestamps keep the order of the file; the
    features step has already ordered them by (timestamp, entity). Training and evaluation
    both call this, which is what makes them agree on the split.
    """
    require_columns(frame, [timestamp], "data")
    order = utc_timestamps(frame[timestamp], timestamp).argsort(kind="stable")
    ordered = frame.iloc[np.asarray(order)].reset_index(drop=True)
    cut = len(ordered) - holdout_rows(len(ordered), holdout)
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)


# ----------------------------------------------------------------- casting to inputs


def _cast_scalar_column(column: pd.Series, tensor: Tensor) -> np.ndarray:
    where = f"input {tensor.name} ({tensor.dtype})"
    missing = int(column.isna().sum())
    if missing and tensor.dtype not in FLOAT_DTYPES:
        raise StepError(f"{where}: column has {missing} missing value(s)")
    if tensor.dtype == "string":
        # Plain object arrays of str: what onnxruntime's string inputs take (pandas 3's
        # Arrow-backed "str" dtype is not accepted as is).
        return column.astype(str).to_numpy(dtype=object)
    if pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column):
        raise StepError(f"{where}: column holds {column.dtype} values, not numbers")
    values = column.to_numpy()
    if tensor.dtype == "bool":
        if not np.isin(values.astype(np.float64), (0.0, 1.0)).all():
            raise StepError(f"{where}: column holds values other than 0/1/true/false")
        return values.astype(np.bool_)
    if tensor.dtype in INTEGER_DTYPES:
        # bool -> 0/1 is lossless; a float like 2.5 is not, and would silently truncate.
        as_float = values.astype(np.float64)
        if not np.array_equal(as_float, np.round(as_float)):
            raise StepError(f"{where}: column holds non-integer values")
    return values.astype(NUMPY_TYPES[tensor.dtype])


def column_to_tensor(column: pd.Series, tensor: Tensor) -> np.ndarray:
    """One data column as the input tensor: cast to its dtype and shaped (batch, *dims)."""
    dims = tensor.shape[1:]
    if all(d in (1, -1) for d in dims):
        # A scalar per row; a -1 inner dimension is fed with size 1.
        return _cast_scalar_column(column, tensor).reshape(-1, *([1] * len(dims)))
    # A vector/matrix per row: the column must hold array-likes of the right size.
    try:
        stacked = np.stack([np.asarray(v) for v in column.to_numpy()])
        return stacked.astype(NUMPY_TYPES[tensor.dtype]).reshape(-1, *dims)
    except (ValueError, TypeError) as error:
        raise StepError(
            f"input {tensor.name}: column values do not fit shape {list(tensor.shape)}: {error}"
        ) from error


def feeds(frame: pd.DataFrame, inputs: Sequence[Tensor]) -> dict[str, np.ndarray]:
    """Input tensors for onnxruntime, one data column per input, named like the input."""
    require_columns(frame, [t.name for t in inputs], "data")
    return {t.name: column_to_tensor(frame[t.name], t) for t in inputs}


# ---------------------------------------------------------------------------- files


def sha256_bytes(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, payload: bytes) -> None:
    """Readers never see a half-written file, and a failed step leaves no partial output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        # mkstemp creates 0600 files; the next step may run as another user.
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"))


def json_text(document: Any) -> str:
    """Canonical JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def round_metric(value: float) -> float:
    """Six decimals: plenty for gates, and the same value prints the same on every run."""
    if not math.isfinite(value):
        raise StepError(f"metric value {value} is not finite")
    return round(float(value), 6) + 0.0  # + 0.0 turns -0.0 into 0.0


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table with a schema that does not depend on pandas' choices.

    pandas 3 stores text as large_string and may use dictionaries for categoricals; both
    become plain string. The pandas metadata (which embeds the pandas version) is dropped,
    so the bytes depend on the data and the pyarrow version only.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_large_string(kind):
            kind = pa.string()
        fields.append(pa.field(field.name, kind))
    return table.cast(pa.schema(fields)).replace_schema_metadata(None)


def write_parquet(frame: pd.DataFrame, path: Path) -> bytes:
    """Deterministic parquet: every layout option pinned; returns the bytes written."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        arrow_table(frame),
        sink,
        row_group_size=ROW_GROUP_ROWS,
        compression="snappy",
        use_dictionary=True,
        write_statistics=True,
        version="2.6",
        data_page_version="1.0",
    )
    payload: bytes = sink.getvalue().to_pybytes()
    write_atomic(path, payload)
    return payload
