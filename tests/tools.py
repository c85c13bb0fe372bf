"""Finding the external tools some tests need: skip with a reason, or fail in CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]  # the repository's root folder


def require_tool(name: str, package: str, *, aliases: tuple[str, ...] = ()) -> str:
    """Path of `name` (or of the first alias found); if none is installed, the test
    is skipped outside CI and fails in CI, which must provide every tool."""
    for candidate in (name, *aliases):
        path = shutil.which(candidate)
        if path is not None:
            return path
    message = f"`{name}` is not installed (Debian package `{package}`; `make test` installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide it: {message}")
    pytest.skip(message)
