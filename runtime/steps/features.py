"""The features step: a point-in-time snapshot of a FeatureSet's source, as one parquet file.

    python -m runtime.steps.features --source URI [--format parquet|csv] [--sha256 HEX]
        --entity COL --timestamp COL --columns a,b,c --target COL [--as-of ISO8601|now] --out DIR

The source is a file or a prefix/folder of files, on local disk or in any object store fsspec
reaches (s3://, gs://, ...). Files of a folder are read in path order; names starting with
`.` or `_` (e.g. `_SUCCESS`) are skipped.

--sha256 pins the source: for a single file it is the sha256 of the file's bytes; for a
folder it is the sha256 of a manifest with one line `<sha256 of file>  <path relative to the
folder>` per file, in path order (what `sha256sum` prints, so it can be reproduced by hand).

Output, in DIR:

* features.parquet: entity, timestamp, the feature columns and the target, in that order.
  Timestamps are parsed (naive ones are UTC) and stored as timestamp[us, UTC]. Rows after
  --as-of are dropped, only the latest row per entity is kept (on equal timestamps the one
  read last), and rows are sorted by (timestamp, entity). Written with pinned parquet
  options, so the same inputs give the same bytes.
* sha256: the hex digest of features.parquet and a newline.
* rows: the row count and a newline.
* source_sha256: the source digest as defined above (to pin the source in the spec).
* as_of: the snapshot's time as ISO 8601 (UTC), empty without --as-of. `--as-of now`, the
  pipeline's default, is the moment the step starts (whole seconds): rows stamped after it
  are not read, and the file records which moment that was.

Column dtypes are kept as the source has them: a bool feature stays bool. Casting to the
model's input dtypes (bool -> int64 0/1 for the car-loan model) is the trainer's job
(runtime/steps/train.py, or a user's own) and the evaluate/validate steps', which cast
every column to the dtype the signature declares. The snapshot stays faithful to the
source, whatever model reads it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa

from runtime.contract.data_files import hidden_below
from runtime.contract.steps import AS_OF_NOW, FEATURES
from runtime.steps.pipeline_io import (
    StepError,
    comma_list,
    progress,
    require_columns,
    run_main,
    sha256_bytes,
    utc_timestamps,
    write_parquet,
    write_text,
)

STEP = "features"
# One entry per format the contract lets --format name (FEATURE_FORMATS; a test holds them equal).
SUFFIXES: dict[str, tuple[str, ...]] = {
    "parquet": (".parquet", ".pq", ".parq"),
    "csv": (".csv", ".csv.gz"),
}


@dataclass(frozen=True)
class SourceFile:
    path: str
    relative: str  # path below the source prefix; "" for a single file
    payload: bytes


# --------------------------------------------------------------------------- reading


def file_format(path: str, given: str | None) -> str | None:
    if given is not None:
        return given if path.lower().endswith(SUFFIXES[given]) else None
    lowered = path.lower()
    return next((fmt for fmt, ends in SUFFIXES.items() if lowered.endswith(ends)), None)


@dataclass(frozen=True)
class Listing:
    fs: fsspec.AbstractFileSystem
    prefix: str  # "<root>/" for a folder, "" for a single file
    paths: list[str]


def list_source(uri: str, given: str | None) -> Listing:
    """The files to read: the source itself, or the data files below a prefix, sorted."""
    try:
        fs, root = fsspec.core.url_to_fs(uri)
        if fs.isfile(root):
            return Listing(fs, "", [root])
        if not fs.isdir(root):
            raise StepError(f"source {uri} does not exist")
        found = sorted(fs.find(root))
    except (OSError, ValueError, ImportError) as error:
        raise StepError(f"cannot list source {uri}: {error}") from error
    prefix = root.rstrip("/") + "/"
    paths = [
        path
        for path in found
        if not hidden_below(path, prefix) and file_format(path, given) is not None
    ]
    if not paths:
        raise StepError(f"source {uri} holds no {given or 'parquet or csv'} files")
    return Listing(fs, prefix, paths)


def read_source(uri: str, given: str | None) -> tuple[list[SourceFile], str]:
    """All source files' bytes (read once: the digest covers exactly what is parsed)."""
    listing = list_source(uri, given)
    formats = {file_format(p, given) for p in listing.paths}
    fmt = formats.pop() if len(formats) == 1 else None
    if formats:
        raise StepError(f"source {uri} mixes parquet and csv files; pass --format")
    if fmt is None:
        raise StepError(f"source {uri}: cannot tell the format from its name; pass --format")
    files = []
    for path in listing.paths:
        try:
            payload = listing.fs.cat_file(path)
        except OSError as error:
            raise StepError(f"cannot read {path}: {error}") from error
        relative = path[len(listing.prefix) :] if listing.prefix else ""
        files.append(SourceFile(path, relative, payload))
    return files, fmt


def source_digest(files: Sequence[SourceFile]) -> str:
    if len(files) == 1 and files[0].relative == "":
        return sha256_bytes(files[0].payload)
    manifest = "".join(f"{sha256_bytes(f.payload)}  {f.relative}\n" for f in files)
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def parse_file(source: SourceFile, fmt: str, columns: Sequence[str]) -> pd.DataFrame:
    name = source.relative or source.path
    try:
        if fmt == "csv":
            compression = "gzip" if source.path.endswith(".gz") else None
            frame = pd.read_csv(io.BytesIO(source.payload), compression=compression)
        else:
            frame = pd.read_parquet(io.BytesIO(source.payload))
    except (OSError, ValueError, pa.ArrowException) as error:
        raise StepError(f"cannot parse {name} as {fmt}: {error}") from error
    require_columns(frame, columns, f"source file {name}" if source.relative else "source")
    return frame[list(columns)]


# -------------------------------------------------------------------------- snapshot


def parse_as_of(value: str | None) -> pd.Timestamp | None:
    if value is None:
        return None
    if value == AS_OF_NOW:
        return pd.Timestamp.now(tz="UTC").floor("s")
    try:
        stamp = pd.Timestamp(value)
    except ValueError as error:
        raise StepError(f"--as-of {value!r} is not an ISO 8601 timestamp") from error
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def snapshot(
    frame: pd.DataFrame, entity: str, timestamp: str, as_of: pd.Timestamp | None
) -> pd.DataFrame:
    """Rows known at as_of, the latest per entity, sorted by (timestamp, entity)."""
    frame = frame.assign(**{timestamp: utc_timestamps(frame[timestamp], timestamp)})
    missing = frame[entity].isna() | frame[timestamp].isna()
    if missing.any():
        raise StepError(
            f"{int(missing.sum())} row(s) have no {entity} or no {timestamp}; "
            "a point-in-time snapshot cannot place them"
        )
    if as_of is not None:
        frame = frame[frame[timestamp] <= as_of]
    # Stable sort by time, then keep the last row per entity: the latest one, and of rows
    # with equal timestamps the one read last (files in path order, rows in file order).
    frame = frame.sort_values(timestamp, kind="stable")
    frame = frame.drop_duplicates(subset=[entity], keep="last")
    return frame.sort_values([timestamp, entity], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return FEATURES.parser().parse_args(argv)


def output_columns(args: argparse.Namespace) -> list[str]:
    features = comma_list(args.columns)
    if not features:
        raise StepError("--columns names no column")
    # dict.fromkeys: keep the order, drop repeats (a target listed as a feature too).
    return list(dict.fromkeys([args.entity, args.timestamp, *features, args.target]))


def verify_digest(actual: str, expected: str | None, uri: str) -> None:
    if expected is None:
        return
    if actual != expected.strip().lower():
        raise StepError(
            f"source {uri} has sha256 {actual}, but --sha256 pins {expected.strip().lower()}; "
            "refusing to build features from data that changed"
        )


def build(
    args: argparse.Namespace, columns: list[str], as_of: pd.Timestamp | None
) -> tuple[pd.DataFrame, str]:
    """(snapshot, source digest); the digest is checked before anything is parsed."""
    files, fmt = read_source(args.source, args.format)
    digest = source_digest(files)
    progress(STEP, f"read {len(files)} {fmt} file(s) from {args.source} sha256={digest}")
    verify_digest(digest, args.sha256, args.source)
    raw = pd.concat([parse_file(f, fmt, columns) for f in files], ignore_index=True)
    frame = snapshot(raw, args.entity, args.timestamp, as_of)
    cutoff = f" at or before --as-of {as_of}" if as_of is not None else ""
    if frame.empty:
        raise StepError(f"source {args.source} has no rows{cutoff}; nothing to train on")
    progress(STEP, f"snapshot: {len(frame)} of {len(raw)} rows{cutoff}")
    return frame, digest


def write_outputs(
    out: Path, frame: pd.DataFrame, source_sha256: str, as_of: pd.Timestamp | None
) -> str:
    """features.parquet and the small files the next steps read; returns its digest."""
    out.mkdir(parents=True, exist_ok=True)
    digest = sha256_bytes(write_parquet(frame, out / "features.parquet"))
    write_text(out / "sha256", digest + "\n")
    write_text(out / "rows", f"{len(frame)}\n")
    write_text(out / "source_sha256", source_sha256 + "\n")
    # The snapshot's time, resolved: with the source digest it names the rows exactly.
    write_text(out / "as_of", (as_of.isoformat() if as_of is not None else "") + "\n")
    return digest


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    columns = output_columns(args)
    as_of = parse_as_of(args.as_of)
    frame, source_sha256 = build(args, columns, as_of)
    digest = write_outputs(args.out, frame, source_sha256, as_of)
    progress(
        STEP,
        f"wrote {args.out / 'features.parquet'} rows={len(frame)} columns={len(columns)} "
        f"sha256={digest} in {time.perf_counter() - start:.2f}s",
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
