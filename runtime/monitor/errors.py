"""The one exception of the monitor job that a person can act on."""

from __future__ import annotations


class MonitorError(Exception):
    """A failure of the job that a person can act on: exit code 1, message in results.json."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
