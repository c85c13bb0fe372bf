"""The user's own cache folder, the one place Kiln keeps what it reuses between runs:
parsed specs, compiled validators, tritonserver and its backend environment.

What is found there decides what Kiln runs, so it must be what this user's Kiln put
there (docs/security.md, "Trust boundaries"). A folder is used only when it is a
real folder (not a link), owned by the current user and writable by no one else;
Kiln creates its folders with mode 0700. Entries are authenticated with an HMAC
under a key only this user can read (`key`, mode 0600, in the cache root): a file
planted by anyone else, in a shared folder or in a checkout, fails the check and is
rebuilt, never used.

It sits in the contract because both the compiler (its disk cache) and the local
tools (tritonserver, the backend venv) follow it, and neither may import the other.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

CACHE_ENV = "KILN_CACHE_DIR"  # the root, or "off"
KEY_FILE = "key"
KEY_BYTES = 32
TAG_BYTES = hashlib.sha256().digest_size
_FOREIGN = stat.S_IWGRP | stat.S_IWOTH  # others may write: anyone could plant entries

_keys: dict[str, bytes] = {}  # cache root -> key, read once per process


class UntrustedFolder(Exception):
    """A cache folder Kiln may not use; the message says why and what to do."""


def default_root() -> Path:
    """`kiln` in the user's cache folder ($XDG_CACHE_HOME, or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kiln"


def cache_root() -> Path | None:
    """$KILN_CACHE_DIR, or `default_root()`; None when caching is off."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit == "off":
        return None
    return Path(explicit) if explicit else default_root()


def untrusted_reason(info: os.stat_result) -> str | None:
    """Why a file or folder with this (l)stat is not the current user's alone, or None."""
    if info.st_uid != os.getuid():
        return f"it belongs to user id {info.st_uid}, not to you ({os.getuid()})"
    if info.st_mode & _FOREIGN:
        return f"others may write to it (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def private_folder(path: Path) -> Path:
    """`path`, created with mode 0700 if missing; UntrustedFolder when it is a link, not
    a folder, not the current user's, or writable by others."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise UntrustedFolder(f"cannot create the cache folder {path}: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise UntrustedFolder(f"the cache folder {path} is a link or not a folder")
    why = untrusted_reason(info)
    if why is not None:
        raise UntrustedFolder(
            f"the cache folder {path} is not yours alone: {why}; point {CACHE_ENV} at a "
            "folder of your own, or delete it to have Kiln create it"
        )
    return path


def key(root: Path) -> bytes:
    """This user's key for `root`, made once (mode 0600); UntrustedFolder when the key
    file is not this user's alone."""
    known = _keys.get(str(root))
    if known is not None:
        return known
    private_folder(root)
    path = root / KEY_FILE
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        made = _read_key(path)
    except OSError as exc:
        raise UntrustedFolder(f"cannot create the cache key {path}: {exc}") from exc
    else:
        made = secrets.token_bytes(KEY_BYTES)
        with os.fdopen(handle, "wb") as stream:
            stream.write(made)
    _keys[str(root)] = made
    return made


def _read_key(path: Path) -> bytes:
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise UntrustedFolder(f"cannot read the cache key {path}: {exc}") from exc
    with os.fdopen(handle, "rb") as stream:
        info = os.fstat(stream.fileno())
        readable_by_others = info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
        why = untrusted_reason(info) or ("others may read it" if readable_by_others else None)
        data = stream.read()
    if why is not None or len(data) != KEY_BYTES:
        problem = why or "it is not a key Kiln wrote"
        raise UntrustedFolder(f"the cache key {path} cannot be trusted: {problem}; delete it")
    return data


def tag(secret: bytes, *parts: bytes) -> bytes:
    """The HMAC-SHA256 of `parts` (each length-prefixed, so that no two lists of parts
    share a tag)."""
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(8, "big"))
        mac.update(part)
    return mac.digest()


def verify(secret: bytes, expected: bytes, *parts: bytes) -> bool:
    return hmac.compare_digest(expected, tag(secret, *parts))


def read_private(path: Path) -> bytes | None:
    """A file's bytes when it is a regular file of the current user's that no one else
    may write (a link is not followed); None otherwise, or when there is none."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(handle, "rb") as stream:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode) or untrusted_reason(info) is not None:
            return None
        return stream.read()
