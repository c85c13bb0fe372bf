"""Late ground truth joined onto the analysis rows, so realised performance runs on them.

Labels are parquet files under `MonitorConfig.labels.uri` (for served traffic,
`<data>/<model>/labels/`, runtime/contract/capture.py), each with the join key (the
captured `request_id`, or the FeatureSet's entity column) and the target column. A row
labelled twice takes the label written last (files in name order, rows in file order);
rows without a label keep a missing target, which NannyML's realised performance skips.
No labels yet is a note, not an error: they arrive when they arrive.
"""

from __future__ import annotations

import pandas as pd

from runtime.contract.monitor_config import Labels, MonitorConfig
from runtime.monitor.data import MonitorError, list_files, read_file


def read_labels(labels: Labels, target: str) -> pd.DataFrame | None:
    """The labels on record, one row per key, or None when there are none yet."""
    try:
        fs, files = list_files(labels.uri, "parquet", "labels")
    except MonitorError as exc:
        if "does not exist" in exc.message or "without parquet files" in exc.message:
            return None
        raise
    frames = [read_file(fs, f, "parquet", "labels", [labels.key, target], []) for f in files]
    joined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return joined.drop_duplicates(labels.key, keep="last")


def join_labels(
    config: MonitorConfig, labels: Labels, frame: pd.DataFrame, notes: list[str]
) -> pd.DataFrame:
    """The analysis frame with its target filled from the labels where the key matches."""
    target = config.columns.target
    if target is None:
        return frame
    found = read_labels(labels, target)
    if found is None:
        notes.append(f"no labels at {labels.uri} yet: realised performance waits for them")
        return frame
    keys = frame[labels.key].astype("string")
    mapped = keys.map(dict(zip(found[labels.key].astype("string"), found[target], strict=True)))
    if target in frame.columns:
        mapped = frame[target].where(frame[target].notna(), mapped)
    frame[target] = mapped.to_numpy()
    matched = int(keys.isin(set(found[labels.key].astype("string"))).sum())
    notes.append(f"labels joined by {labels.key!r}: {matched} of {len(frame)} rows labelled")
    return frame
