"""Which files in a data folder are data: the one rule the features step, the monitor,
batch scoring and the rollout comparison share.

Names starting with `.` or `_` below the folder are markers and parts in progress
(`_SUCCESS`, a capture part being written as `.part-...`, `_temporary/`), as Spark and
pyarrow treat them; the folder's own path may hold such names (the local data store is
`.kiln/data`), so only the part below it counts.
"""

from __future__ import annotations


def hidden_below(found: str, folder: str) -> bool:
    """Whether `found`, a path listed under `folder`, is a marker or a part in progress."""
    root = folder.rstrip("/")
    inside = found[len(root) :] if found.startswith(root) else found
    return any(part.startswith(("_", ".")) for part in inside.split("/"))
