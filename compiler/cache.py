"""A content-addressed disk cache for expensive, pure derivations.

Compiling a strict validator for a large CRD takes a second; loading its cached
bytecode takes a millisecond. Entries are keyed by the sha256 of everything
they derive from, so a stale entry can never be read. The cache is an
optimisation only: when it cannot be read or written, work is simply redone.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "KILN_CACHE_DIR"


def cache_dir() -> Path | None:
    if os.environ.get(CACHE_ENV) == "off":
        return None
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kiln"


def key(*parts: bytes | str) -> str:
    digest = hashlib.sha256(f"python{sys.version_info[:2]}".encode())
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def get(kind: str, entry: str) -> bytes | None:
    """The bytes stored under `kind/entry`, or None."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        return (folder / kind / entry).read_bytes()
    except OSError:
        return None


def put(kind: str, entry: str, data: bytes) -> None:
    """Store bytes under `kind/entry`, atomically; a failure only means no caching."""
    folder = cache_dir()
    if folder is None:
        return
    path = folder / kind / entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except OSError:
        pass


def cached(kind: str, entry: str, build: Callable[[], bytes]) -> bytes:
    """The bytes stored under `kind/entry`, building and storing them if absent."""
    data = get(kind, entry)
    if data is None:
        data = build()
        put(kind, entry, data)
    return data
