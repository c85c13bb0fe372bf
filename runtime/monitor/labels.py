"""Late ground truth joined onto the analysis rows, so realised performance runs on them.

Labels are parquet files under `MonitorConfig.labels.uri` (`<data>/<model>/labels/`,
runtime/contract/capture.py), each with the target column and at least one of the
config's keys: a served row's `request_id`, the FeatureSet's id column. Each analysis row
takes its label by the first key that both it and a label carry, in the config's order
(a request id names one served row; an entity may have been scored more than once, and
all its rows take its label). For one key, a label written twice counts as written last
(files in name order, rows in file order); rows without a label keep a missing target,
which NannyML's realised performance skips. No labels yet is a note, not an error; labels
on record for analysis rows that carry none of the keys are refused, naming them.
"""

from __future__ import annotations

import pandas as pd

from runtime.contract.monitor_config import Labels, MonitorConfig
from runtime.monitor.errors import MonitorError
from runtime.monitor.files import list_files, read_parquet


def _names(columns: list[str]) -> str:
    return ", ".join(repr(c) for c in columns)


def read_labels(labels: Labels, target: str) -> pd.DataFrame | None:
    """The labels on record (the target and whichever keys the files hold), or None when
    there are none yet. A file holding none of the keys is refused by name."""
    try:
        listing = list_files(labels.uri, "parquet", "labels")
    except MonitorError as exc:
        if "does not exist" in exc.message or "without parquet files" in exc.message:
            return None
        raise
    found = read_parquet(listing, "labels", [target], list(labels.keys))
    keys = [k for k in labels.keys if k in found.columns]
    if not keys:
        raise MonitorError(
            "labels",
            f"the labels at {labels.uri} hold none of the keys they are joined by "
            f"({_names(list(labels.keys))}): write each label with one of them",
        )
    return found


def _by_key(found: pd.DataFrame, key: str, target: str) -> pd.Series:
    """Target per key value, the label written last winning."""
    keyed = found[found[key].notna()].drop_duplicates(key, keep="last")
    return pd.Series(keyed[target].to_numpy(), index=keyed[key].astype("string"))


def join_labels(
    config: MonitorConfig, labels: Labels, frame: pd.DataFrame, notes: list[str]
) -> pd.DataFrame:
    """The analysis frame with its target filled from the labels where a key matches."""
    target = config.columns.target
    if target is None:
        return frame
    found = read_labels(labels, target)
    if found is None:
        notes.append(f"no labels at {labels.uri} yet: realised performance waits for them")
        return frame
    usable = [k for k in labels.keys if k in frame.columns and k in found.columns]
    if not usable:
        carried = [k for k in labels.keys if k in found.columns]
        if target in frame.columns and frame[target].notna().any():
            # Rows that bring their own ground truth (a file, batch predictions of labelled
            # data) do not need labels written for other rows, such as served traffic.
            notes.append(
                f"labels at {labels.uri} are keyed by {_names(carried)}, which the analysis "
                f"rows do not carry: their own {target!r} column is used"
            )
            return frame
        raise MonitorError(
            "labels",
            f"the labels at {labels.uri} are keyed by {_names(carried)}, and the analysis "
            f"rows carry none of the columns labels join on ({_names(list(labels.keys))}): "
            "add the FeatureSet's id column to the analysis data (batch predictions and "
            "captured inputs keep it), or label the served rows by request_id",
        )
    mapped: pd.Series | None = None
    counts = []
    for key in usable:
        values = frame[key].astype("string").map(_by_key(found, key, target))
        fresh = values.notna() if mapped is None else mapped.isna() & values.notna()
        mapped = values if mapped is None else mapped.where(mapped.notna(), values)
        counts.append(f"{int(fresh.sum())} by {key!r}")
    assert mapped is not None
    if target in frame.columns:
        mapped = frame[target].where(frame[target].notna(), mapped)
    frame[target] = mapped.to_numpy()
    labelled = int(frame[target].notna().sum())
    notes.append(f"labels joined ({', '.join(counts)}): {labelled} of {len(frame)} rows labelled")
    return frame
