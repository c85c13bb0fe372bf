"""The monitor's data files: listing a file or folder (local or any fsspec store), and reading
the columns a data set needs from them, once, into one frame.

A folder of parquet files is read as one pyarrow dataset: only the needed columns, every
file's rows in name order, files whose columns differ unified (a column one file lacks is
missing there; int and float become float). Hive partition folders below the folder
(`version=3/date=2026-12-07/`) are columns too, so a column may live in the path alone; a
column that a file stores wins over a partition folder of the same name (a captured part
holds `environment` and sits below `environment=<env>/`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pandas as pd

from runtime.contract.data_files import hidden_below
from runtime.monitor.errors import MonitorError

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz")
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Listing:
    """The files of one data set: `folder` is the folder listed, None for a single file."""

    fs: Any
    files: list[str]
    folder: str | None


def list_files(uri: str, fmt: str, role: str) -> Listing:
    """The data files at `uri`, in name order (markers and parts in progress skipped)."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise MonitorError("load", f"{role} data {uri}: cannot open this location: {exc}") from exc
    try:
        if fs.isdir(path):
            suffixes = PARQUET_SUFFIXES if fmt == "parquet" else CSV_SUFFIXES
            files = sorted(
                p
                for p in fs.find(path)
                if p.lower().endswith(suffixes) and not hidden_below(p, path)
            )
            if not files:
                raise MonitorError(
                    "load", f"{role} data {uri} is a folder without {fmt} files ({suffixes[0]})"
                )
            return Listing(fs, files, path.rstrip("/"))
        if fs.exists(path):
            return Listing(fs, [path], None)
    except MonitorError:
        raise
    except Exception as exc:  # a store's own errors: permissions, network
        raise MonitorError("load", f"{role} data {uri}: {type(exc).__name__}: {exc}") from exc
    raise MonitorError("load", f"{role} data {uri} does not exist")


def missing_message(role: str, where: str, missing: list[str], present: list[str]) -> str:
    """Names the missing columns and counts the others: a file's header is its content
    (a mounted Secret read as CSV has the secret for a header), so it is not echoed. A
    present name is shown only as a suggestion, when it nearly equals a declared one."""
    parts = []
    for column in missing:
        close = difflib.get_close_matches(column, present, n=1, cutoff=0.8)
        parts.append(f"{column!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"{role} data {where} lacks the declared column(s) {', '.join(parts)}; "
        f"it has {len(present)} column(s)"
    )


def read_frame(
    listing: Listing, fmt: str, role: str, required: list[str], optional: list[str]
) -> pd.DataFrame:
    """The required columns and whichever optional ones exist, of every file, as one frame.
    Raises MonitorError naming the first file that lacks a required column."""
    if fmt == "parquet":
        return read_parquet(listing, role, required, optional)
    frames = [_read_csv(listing.fs, f, role, required, optional) for f in listing.files]
    # A column optional in one file and absent in another becomes missing values.
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _read_csv(
    fs: Any, path: str, role: str, required: list[str], optional: list[str]
) -> pd.DataFrame:
    try:
        with fs.open(path, "rb", compression="infer") as handle:
            frame = pd.read_csv(handle)
    except Exception as exc:
        raise MonitorError(
            "load", f"{role} data {path}: cannot read it as csv: {type(exc).__name__}: {exc}"
        ) from exc
    present = list(frame.columns)
    missing = [c for c in required if c not in present]
    if missing:
        raise MonitorError("columns", missing_message(role, path, missing, present))
    return frame[required + [c for c in optional if c in present]]


def read_parquet(
    listing: Listing, role: str, required: list[str], optional: list[str]
) -> pd.DataFrame:
    """Parquet files as one pyarrow dataset, read once (see the module's docstring)."""
    import pyarrow.dataset as ds

    where = listing.folder or listing.files[0]
    try:
        plain = ds.dataset(listing.files, filesystem=listing.fs, format="parquet")
        fragments = list(plain.get_fragments())
        stored = [f.physical_schema for f in fragments]  # each file's footer, read once
        partitions = _partition_columns(listing, stored)
        _check_columns(listing, role, stored, list(partitions), required)
        dataset = _with_partitions(listing, plain, stored, partitions)
        wanted = required + [c for c in optional if c in dataset.schema.names]
        return dataset.to_table(columns=wanted).to_pandas()
    except MonitorError:
        raise
    except Exception as exc:
        raise MonitorError(
            "load", f"{role} data {where}: cannot read it as parquet: {type(exc).__name__}: {exc}"
        ) from exc


def partition_keys(path: str, folder: str) -> dict[str, str]:
    """The hive partition folders (`key=value`) of a file below `folder`, values decoded."""
    inside = path[len(folder) :].strip("/").split("/")[:-1]
    pairs = (segment.split("=", 1) for segment in inside if "=" in segment)
    return {key: unquote(value) for key, value in pairs}


def _partition_columns(listing: Listing, stored: list[Any]) -> dict[str, list[str]]:
    """Partition folder names that no file stores, with their values (a file each)."""
    keys: dict[str, list[str]] = {}
    if listing.folder is not None:
        for path in listing.files:
            for key, value in partition_keys(path, listing.folder).items():
                keys.setdefault(key, []).append(value)
    names = {name for schema in stored for name in schema.names}
    return {key: values for key, values in keys.items() if key not in names}


def _with_partitions(
    listing: Listing, plain: Any, stored: list[Any], partitions: dict[str, list[str]]
) -> Any:
    """The dataset with the partition columns and one schema for all files; `plain`
    itself when there is nothing to add (one schema, no partitions)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if not partitions and all(s.equals(stored[0]) for s in stored):
        return plain
    added = [
        pa.field(key, pa.int64() if all(map(_WHOLE_NUMBER.fullmatch, values)) else pa.string())
        for key, values in partitions.items()
    ]
    columns = pa.unify_schemas(stored, promote_options="permissive")
    return ds.dataset(
        listing.files,
        schema=pa.schema([*columns, *added]),
        filesystem=listing.fs,
        format="parquet",
        partitioning=ds.partitioning(pa.schema(added), flavor="hive") if added else None,
        partition_base_dir=listing.folder,
    )


def _check_columns(
    listing: Listing, role: str, stored: list[Any], partitions: list[str], required: list[str]
) -> None:
    """Every file holds every required column, in itself or in its partition folders."""
    for path, schema in zip(listing.files, stored, strict=True):
        present = list(schema.names)
        if listing.folder is not None:
            present += [k for k in partition_keys(path, listing.folder) if k in partitions]
        missing = [c for c in required if c not in present]
        if missing:
            raise MonitorError("columns", missing_message(role, path, missing, present))
