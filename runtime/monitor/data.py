"""Loading the monitor's data sets: the columns read (`files.py` reads them), the lookback
window, and the column checks that turn a bad input into one precise message.

Everything NannyML would otherwise guess or get wrong silently is settled here, once:
timestamps are parsed (naive timestamps are UTC), rows are sorted by time, and categorical
features are handed over as `object` columns so that every calculator treats them as
categorical whatever their storage type (NannyML infers roles from dtypes in the
calculators that take no role lists: data reconstruction, DLE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from runtime.contract.durations import duration_seconds as _seconds
from runtime.contract.monitor_config import Columns, DataSource, FeatureColumn, MonitorConfig
from runtime.monitor.errors import MonitorError
from runtime.monitor.files import list_files, read_frame

__all__ = ["Dataset", "MonitorError", "Role", "load_dataset", "required_columns"]

Role = Literal["reference", "analysis", "labels"]


@dataclass
class Dataset:
    """A loaded, checked data set, sorted by time."""

    role: Role
    uri: str
    files: list[str]
    frame: pd.DataFrame
    rows_read: int
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.frame)


def required_columns(config: MonitorConfig, role: Role) -> tuple[list[str], list[str]]:
    """(required, optional) columns of a data set, in a stable order."""
    cols = config.columns
    required = [cols.timestamp, *cols.feature_names, cols.prediction]
    if isinstance(cols.score, str):
        required.append(cols.score)
    elif cols.score:
        required.extend(cols.score[k] for k in sorted(cols.score))
    optional: list[str] = []
    if cols.target:
        # The reference must hold targets for the estimators to fit; analysis targets
        # arrive late and enable realised performance when they do.
        (required if role == "reference" and config.performance else optional).append(cols.target)
    if role == "analysis" and config.labels is not None:
        # The label keys the rows carry (served rows their request ids; files and batch
        # predictions the FeatureSet's id column); the labels join refuses none at all.
        optional.extend(k for k in config.labels.keys if k not in required + optional)
    return required, optional


def load_dataset(
    config: MonitorConfig, role: Role, source: DataSource, override: str | None = None
) -> Dataset:
    """Read, window, check and normalise one data set. Raises MonitorError."""
    uri = override or source.uri
    fmt = source.format
    if override:
        lowered = override.lower()
        fmt = (
            "csv"
            if lowered.endswith((".csv", ".csv.gz"))
            else ("parquet" if lowered.endswith((".parquet", ".parq", ".pq")) else fmt)
        )
    required, optional = required_columns(config, role)
    listing = list_files(uri, fmt, role)
    frame = read_frame(listing, fmt, role, required, optional)
    rows_read = len(frame)
    if rows_read == 0:
        raise MonitorError("load", f"{role} data {uri} has no rows")
    notes: list[str] = []
    frame = _timestamps(frame, config.columns.timestamp, role, notes)
    if source.lookback:
        frame = apply_lookback(frame, config.columns.timestamp, source.lookback)
        notes.append(
            f"lookback {source.lookback}: kept {len(frame)} of {rows_read} rows "
            f"(after {frame[config.columns.timestamp].min()})"
        )
    frame = _by_time(frame, config.columns.timestamp)
    if role == "analysis" and config.labels is not None:
        from runtime.monitor.labels import join_labels

        frame = join_labels(config, config.labels, frame, notes)
    frame = check_columns(config, role, frame, notes)
    # The checks replace columns one by one, leaving one block per column; NannyML's
    # calculators would merge them again on every copy they take (0.3 s of univariate
    # drift alone at 1,000,000 rows). One copy merges them once.
    frame = frame.copy()
    return Dataset(role, uri, listing.files, frame, rows_read, notes)


def _by_time(frame: pd.DataFrame, timestamp: str) -> pd.DataFrame:
    """Rows in time order, numbered from 0. Data is mostly written in time order already,
    and then a stable sort changes nothing: checking costs a pass, sorting an argsort."""
    if frame[timestamp].is_monotonic_increasing:
        index = frame.index
        if isinstance(index, pd.RangeIndex) and (index.start, index.step) == (0, 1):
            return frame
        return frame.reset_index(drop=True)
    return frame.sort_values(timestamp, kind="stable").reset_index(drop=True)


def apply_lookback(frame: pd.DataFrame, timestamp: str, lookback: str) -> pd.DataFrame:
    """Rows in the window (latest - lookback, latest], relative to the data's own latest time."""
    times = frame[timestamp]
    cut = times.max() - pd.Timedelta(seconds=_seconds(lookback))
    return frame.loc[times > cut]


def _timestamps(frame: pd.DataFrame, column: str, role: Role, notes: list[str]) -> pd.DataFrame:
    series = frame[column]
    if series.isna().any():
        count = int(series.isna().sum())
        raise MonitorError(
            "columns", f"{role} data: {count} of {len(series)} rows have no timestamp ({column!r})"
        )
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        frame[column] = series.dt.tz_convert("UTC").dt.tz_localize(None)
        notes.append(f"timestamps in {column!r} converted to UTC")
    elif not pd.api.types.is_datetime64_dtype(series):
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            raise MonitorError(
                "columns",
                f"{role} data: timestamp column {column!r} holds {series.dtype} values; "
                "write timestamps as dates (parquet timestamp or ISO 8601 text), not numbers",
            )
        try:
            parsed = pd.to_datetime(series, format="ISO8601", utc=True)
        except (ValueError, TypeError) as exc:
            unparsed = pd.to_datetime(series, format="ISO8601", utc=True, errors="coerce").isna()
            raise MonitorError(
                "columns",
                f"{role} data: timestamp column {column!r} holds text that is not an ISO 8601 "
                f"date in {_rows(unparsed & series.notna())}",
            ) from exc
        frame[column] = parsed.dt.tz_localize(None)
    return frame


def _rows(mask: pd.Series | np.ndarray) -> str:
    """How many rows break a rule: counted, never shown, since the file may hold anything
    (docs/security.md, "Trust boundaries")."""
    return f"{int(np.count_nonzero(mask))} of {len(mask)} rows"


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _to_numpy_dtype(series: pd.Series) -> pd.Series:
    """Nullable extension dtypes (Int64, Float64, boolean) to numpy ones NannyML handles."""
    dtype = series.dtype
    if isinstance(dtype, pd.BooleanDtype):
        return series.astype(object) if series.isna().any() else series.astype(bool)
    if pd.api.types.is_extension_array_dtype(dtype) and _numeric(series):
        if series.isna().any() or pd.api.types.is_float_dtype(dtype):
            return series.astype("float64")
        return series.astype(dtype.numpy_dtype)
    return series


def _feature(role: Role, feature: FeatureColumn, series: pd.Series, notes: list[str]) -> pd.Series:
    name, where = feature.name, f"{role} data: feature {feature.name!r}"
    if series.isna().all():
        raise MonitorError("columns", f"{where} has no values: all {len(series)} rows are missing")
    series = _to_numpy_dtype(series)
    if feature.kind == "continuous":
        if not _numeric(series):
            raise MonitorError(
                "columns",
                f"{where} is declared continuous ({feature.dtype}) but holds {series.dtype} "
                f"values in {_rows(series.notna())}",
            )
        return series
    # Categorical: check the storage type against the declared dtype; numbers are handed
    # over as an object column so that no calculator takes them for continuous.
    declared = feature.dtype
    if declared == "string":
        if _numeric(series) or pd.api.types.is_bool_dtype(series):
            raise MonitorError(
                "columns", f"{where} is declared string but holds {series.dtype} values"
            )
    elif declared.startswith("int") or declared == "bool":
        if pd.api.types.is_bool_dtype(series):
            if declared != "bool":
                notes.append(f"{role} data: feature {name!r} is bool; read as {declared} 0/1")
                series = series.astype("int64")
        elif _numeric(series):
            values = series.dropna()
            bad = values != np.round(values)
            if declared == "bool":
                bad = ~values.isin([0, 1])
            if bad.any():
                raise MonitorError(
                    "columns",
                    f"{where} is declared {declared} but holds other values in {_rows(bad)}",
                )
        elif not (series.dropna().map(type).isin([bool]).all() and declared == "bool"):
            raise MonitorError(
                "columns",
                f"{where} is declared {declared} but holds {series.dtype} values in "
                f"{_rows(series.notna())}",
            )
    elif not _numeric(series):  # float categorical
        raise MonitorError(
            "columns", f"{where} is declared {declared} but holds {series.dtype} values"
        )
    if pd.api.types.is_bool_dtype(series) or not _numeric(series):
        return series  # text and bool are categorical to every NannyML calculator already
    return series.astype(object)


def check_columns(
    config: MonitorConfig, role: Role, frame: pd.DataFrame, notes: list[str]
) -> pd.DataFrame:
    """Check every declared column for usable values; return the frame NannyML gets."""
    cols: Columns = config.columns
    for feature in cols.features:
        original = frame[feature.name]
        _replace(frame, original, _feature(role, feature, original, notes))
    _predictions(config, role, frame)
    _scores(config, role, frame)
    if cols.target and cols.target in frame.columns:
        original = frame[cols.target]
        _replace(frame, original, _target(config, role, original))
    return frame


def _replace(frame: pd.DataFrame, original: pd.Series, checked: pd.Series) -> None:
    """Assign a checked column only when the check changed it: every assignment splits a
    pandas block, and merging them again for NannyML copies the data (docs/performance.md)."""
    if checked is not original:
        frame[original.name] = checked


def _predictions(config: MonitorConfig, role: Role, frame: pd.DataFrame) -> None:
    column = config.columns.prediction
    original = frame[column]
    series = _to_numpy_dtype(original)
    _replace(frame, original, series)
    where = f"{role} data: prediction column {column!r}"
    missing = int(series.isna().sum())
    if missing:
        raise MonitorError("columns", f"{where} has {missing} missing values of {len(series)}")
    if config.task == "regression":
        if not _numeric(series):
            raise MonitorError("columns", f"{where} holds {series.dtype}; regression needs numbers")
    elif config.task == "binary_classification":
        bad = ~series.isin([0, 1])
        if bad.any():
            raise MonitorError(
                "columns",
                f"{where} must hold the labels 0 and 1 for binary classification; "
                f"other values in {_rows(bad)}",
            )
        if series.dtype != "int64":
            frame[column] = series.astype("int64")
    else:
        labels = {str(k) for k in config.columns.score or {}}
        bad = ~series.astype(str).isin(labels)
        if bad.any():
            raise MonitorError(
                "columns",
                f"{where} holds labels without a score column in {_rows(bad)}; "
                f"score columns are declared for {', '.join(sorted(labels))}",
            )


def _scores(config: MonitorConfig, role: Role, frame: pd.DataFrame) -> None:
    score = config.columns.score
    columns = [score] if isinstance(score, str) else sorted((score or {}).values())
    for column in columns:
        original = frame[column]
        series = _to_numpy_dtype(original)
        where = f"{role} data: score column {column!r}"
        if not _numeric(series):
            raise MonitorError("columns", f"{where} holds {series.dtype}; scores are numbers")
        missing = int(series.isna().sum())
        if missing:
            raise MonitorError("columns", f"{where} has {missing} missing values of {len(series)}")
        bad = (series < 0) | (series > 1)
        if bad.any():
            raise MonitorError(
                "columns",
                f"{where} holds values outside [0, 1] in {_rows(bad)}; scores are probabilities",
            )
        _replace(frame, original, series)


def _target(config: MonitorConfig, role: Role, series: pd.Series) -> pd.Series:
    column = config.columns.target
    series = _to_numpy_dtype(series)
    where = f"{role} data: target column {column!r}"
    known = series.dropna()
    if config.task == "regression":
        if not _numeric(series):
            raise MonitorError("columns", f"{where} holds {series.dtype}; regression needs numbers")
    elif config.task == "binary_classification":
        bad = ~known.isin([0, 1])
        if bad.any():
            raise MonitorError(
                "columns",
                f"{where} must hold 0 and 1 (or be missing); other values in {_rows(bad)}",
            )
    if role == "reference" and config.performance is not None:
        if known.empty:
            raise MonitorError("columns", f"{where} has no values; the estimators fit on it")
        if config.classification and known.nunique() < 2:
            only = known.iloc[0]
            only = only.item() if hasattr(only, "item") else only
            raise MonitorError(
                "columns",
                f"{where} holds a single class ({only!r}) in all {len(known)} labelled rows: "
                "performance cannot be calibrated on it (NannyML would report estimates "
                "anyway); use a reference period with every class",
            )
    return series
