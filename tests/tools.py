"""Finding the external tools some tests need: skip with a reason, or fail in CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]  # the repository's root folder


def require_tool(name: str, package: str) -> str:
    """Path of `name`; outside CI a missing tool skips the test, in CI it fails it."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"`{name}` is not installed (Debian package `{package}`)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide it: {message}")
    pytest.skip(message)
