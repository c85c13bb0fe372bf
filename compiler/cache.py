"""A content-addressed disk cache for expensive, pure derivations.

Compiling a strict validator for a large CRD takes a second; loading its cached
bytecode takes a millisecond. Entries are keyed by the sha256 of everything
they derive from, so a stale entry can never be read. The cache is an
optimisation only: when it cannot be read or written, work is simply redone.

What an entry holds decides what a spec means (parsed specs) and what runs (the
validators' bytecode), so each entry carries an HMAC under the user's key, and an
entry that fails it, or a cache folder that is not the user's alone, is ignored
(`runtime.contract.user_cache`; docs/security.md, "Trust boundaries").
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from runtime.contract import user_cache

CACHE_ENV = user_cache.CACHE_ENV
_TAG = user_cache.TAG_BYTES
# Signed entries live apart from those of Kiln versions that wrote them unsigned, so that
# neither reads the other's (an older Kiln would take the tag for the start of its data).
SIGNED = "signed-1"


def cache_dir() -> Path | None:
    """The cache root, or None when caching is off or the folder is not the user's alone
    (then nothing is read from it or written to it)."""
    root = user_cache.cache_root()
    if root is None:
        return None
    try:
        user_cache.key(root)  # checks the folder and its key once per process
    except user_cache.UntrustedFolder:
        return None
    return root


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
    stored = user_cache.read_private(folder / SIGNED / kind / entry)
    if stored is None or len(stored) < _TAG:
        return None
    secret = user_cache.key(folder)
    data = stored[_TAG:]
    if not user_cache.verify(secret, stored[:_TAG], kind.encode(), entry.encode(), data):
        return None  # not written by this user's Kiln: ignored, and rebuilt by the caller
    return data


def put(kind: str, entry: str, data: bytes) -> None:
    """Store bytes under `kind/entry`, atomically; a failure only means no caching."""
    folder = cache_dir()
    if folder is None:
        return
    path = folder / SIGNED / kind / entry
    signed = user_cache.tag(user_cache.key(folder), kind.encode(), entry.encode(), data)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
        with os.fdopen(handle, "wb") as stream:
            stream.write(signed)
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
