"""The duration grammar of specs and configs: '500ms', '90s', '10m', '1h30m', '7d'."""

from __future__ import annotations

import re

# At most 15 digits a number: more than Go's durations hold (about 292 years in
# nanoseconds), and small enough that the seconds are always a finite float.
DURATION = r"(\d{1,15}(ms|s|m|h|d))+"  # also the editor schema's pattern
_WHOLE = re.compile(DURATION)
_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def is_duration(value: str) -> bool:
    """Whether `value` is written in the grammar (it may still be zero)."""
    return _WHOLE.fullmatch(value) is not None


def duration_seconds(value: str) -> float:
    """Seconds in a duration; ValueError for text outside the grammar."""
    if not is_duration(value):
        raise ValueError(f"{value!r} is not a duration such as '30s', '10m', '1h30m' or '7d'")
    return sum(int(n) * UNIT_SECONDS[unit] for n, unit in _PART.findall(value))
