"""`kiln label`: ground truth for served rows, written where the monitor joins it.

A file (parquet or CSV) with the target and at least one join key (the captured
`request_id`, the FeatureSet's id column) becomes one new parquet part under
`<data>/<model>/labels/` (runtime/contract/capture.py), with every key it holds. Parts
are only added, never rewritten: a later label for the same key wins when the monitor
joins them (runtime/monitor/labels.py).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pandas as pd


class LabelError(Exception):
    """A labels file Kiln cannot use; the message says what to change."""


def _read(source: Path) -> pd.DataFrame:
    try:
        if source.suffix.lower() in (".parquet", ".parq", ".pq"):
            return pd.read_parquet(source)
        return pd.read_csv(source)
    except Exception as exc:
        raise LabelError(f"{source}: cannot read it: {type(exc).__name__}") from exc


def _names(columns: list[str]) -> str:
    return " nor ".join(repr(c) for c in columns)


def write_labels(
    source: Path,
    target: str,
    folder: Path,
    keys: Sequence[tuple[str, str]],
    required: str | None = None,
) -> tuple[Path, int]:
    """Write the target and the key columns of `source` that it holds as a new part; (its
    path, rows). `keys` pairs a column of the file with the name the monitor joins on;
    `required`, a column of the file that must be there (one the user named)."""
    frame = _read(source)
    # Named, never echoed: a file's header is its content.
    if target not in frame.columns or (required is not None and required not in frame.columns):
        missing = [c for c in (required, target) if c is not None and c not in frame.columns]
        raise LabelError(
            f"{source} lacks the column(s) {', '.join(map(repr, missing))}; a labels file "
            f"holds a key ({', '.join(repr(k) for k, _ in keys)}) and the target ({target!r})"
        )
    held = [(column, name) for column, name in keys if column in frame.columns]
    if not held:
        raise LabelError(
            f"{source} holds neither {_names([k for k, _ in keys])}, the keys labels are "
            f"joined by: add the served rows' request ids or the FeatureSet's id column"
        )
    columns = [column for column, _ in held]
    labels = frame[[*columns, target]].dropna(subset=columns, how="all")
    if labels.empty:
        raise LabelError(f"{source} has no rows with a {' or '.join(map(repr, columns))}")
    for column in columns:
        labels[column] = labels[column].astype("string")
    labels = labels.rename(columns=dict(held))
    folder.mkdir(parents=True, exist_ok=True)
    name = f"labels-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
    hidden = folder / f".{name}"  # the monitor skips hidden names: no half-written part
    labels.to_parquet(hidden, index=False)
    os.replace(hidden, folder / name)
    return folder / name, len(labels)
