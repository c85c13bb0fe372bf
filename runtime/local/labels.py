"""`kiln label`: ground truth for served rows, written where the monitor joins it.

A file (parquet or CSV) with the join key (the captured `request_id`, or the FeatureSet's
entity column) and the target becomes one new parquet part under
`<data>/<model>/labels/` (runtime/contract/capture.py). Parts are only added, never
rewritten: a later label for the same key wins when the monitor joins them.
"""

from __future__ import annotations

import os
import time
import uuid
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


def write_labels(
    source: Path, key: str, target: str, folder: Path, joined_on: str | None = None
) -> tuple[Path, int]:
    """Write the key and target columns of `source` as a new part; (its path, rows). The
    key column is written under `joined_on`, the name the monitor joins on, when given."""
    frame = _read(source)
    # Named, never echoed: a file's header is its content.
    missing = [c for c in (key, target) if c not in frame.columns]
    if missing:
        raise LabelError(
            f"{source} lacks the column(s) {', '.join(map(repr, missing))}; a labels file "
            f"holds the key ({key!r}) and the target ({target!r})"
        )
    labels = frame[[key, target]].dropna(subset=[key])
    if labels.empty:
        raise LabelError(f"{source} has no rows with a {key!r}")
    labels[key] = labels[key].astype("string")
    if joined_on is not None and joined_on != key:
        labels = labels.rename(columns={key: joined_on})
    folder.mkdir(parents=True, exist_ok=True)
    name = f"labels-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
    hidden = folder / f".{name}"  # the monitor skips hidden names: no half-written part
    labels.to_parquet(hidden, index=False)
    os.replace(hidden, folder / name)
    return folder / name, len(labels)
