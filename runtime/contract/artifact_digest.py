"""The sha256 of an artifact: of a file, its bytes; of a folder, its listing of files.

A folder artifact (a TensorFlow SavedModel: saved_model.pb and variables/) has one
digest, defined here and nowhere else, so the compiler (which checks a local folder
against `artifact.sha256`) and the serving pod's assemble step (which checks what it
fetched) agree:

    for every regular file below the folder, the line
        <path relative to the folder, '/'-separated, UTF-8> NUL <sha256 hex of its bytes> LF
    lines sorted by their bytes; the folder's digest is the sha256 of their concatenation.

Folders themselves are not listed (an empty folder changes nothing Triton loads). A
folder's names are untrusted input, since they come from an object store anyone with
write access can fill: a name that is absolute, has an empty, `.` or `..` part, or
holds a NUL or backslash is refused, and so is a link (it could point outside).
`sha256sum`-style check by hand (from inside the folder):

    find . -type f | sed 's|^\\./||' | LC_ALL=C sort | while read -r f; do
      printf '%s\\0%s\\n' "$f" "$(sha256sum "$f" | cut -c1-64)"; done | sha256sum
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

CHUNK = 1 << 20


class UnsafeEntry(ValueError):
    """A folder entry that must not be fetched or hashed; the message names it."""


def checked_name(relative: str) -> str:
    """`relative` if it is a plain path inside its folder; UnsafeEntry otherwise."""
    if not relative or relative.startswith("/") or "\\" in relative or "\0" in relative:
        raise UnsafeEntry(f"{relative!r} is not a relative path inside the folder")
    if any(part in ("", ".", "..") for part in relative.split("/")):
        raise UnsafeEntry(f"{relative!r} has an empty, '.' or '..' part")
    return relative


def folder_sha256(files: Iterable[tuple[str, str]]) -> str:
    """The folder digest from (relative path, file sha256 hex) pairs, in any order."""
    lines = sorted(
        checked_name(name).encode("utf-8") + b"\0" + digest.lower().encode("ascii") + b"\n"
        for name, digest in files
    )
    return hashlib.sha256(b"".join(lines)).hexdigest()


def file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def local_files(folder: Path) -> list[tuple[str, Path]]:
    """Every regular file below `folder` with its relative name; UnsafeEntry on a link
    or on anything that is neither a file nor a folder (a socket, a device)."""
    found: list[tuple[str, Path]] = []
    for top, folders, files in os.walk(folder, followlinks=False):
        for name in sorted(folders) + sorted(files):
            path = Path(top) / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise UnsafeEntry(f"{relative} is a link")
            if name in files and not path.is_file():
                raise UnsafeEntry(f"{relative} is not a regular file")
            if name in files:
                found.append((checked_name(relative), path))
    return found


def local_folder_sha256(folder: Path) -> str:
    """The folder digest of a folder on this machine (UnsafeEntry as `local_files`)."""
    files = local_files(folder)
    if not files:
        raise UnsafeEntry("the folder holds no file")
    return folder_sha256((name, file_sha256(path)) for name, path in files)
