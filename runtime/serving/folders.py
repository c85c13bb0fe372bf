"""Fetch a folder artifact (a SavedModel: saved_model.pb and variables/) through fsspec.

Every file below the URI is copied, hashed on the way, and the folder digest of
runtime/contract/artifact_digest.py is checked against the declared one. The listing
comes from an object store and is untrusted: a name leading out of the folder, a link
(on a local or mounted store) or an entry that is neither file nor folder stops the
fetch before anything is written, and a copy is written only below `destination`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped, unused-ignore]

from runtime.contract.artifact_digest import UnsafeEntry, checked_name, folder_sha256
from runtime.contract.secrets import redact
from runtime.contract.secrets import redact_uri as shown_uri

CHUNK = 1 << 20


class FolderError(Exception):
    """Why a folder could not be fetched; the message is meant for people."""


def listing(fs: Any, root: str) -> list[tuple[str, str]]:
    """(relative name, store path) of every file below `root`; FolderError on an
    unsafe entry or an empty folder."""
    root = root.rstrip("/")
    found: list[tuple[str, str]] = []
    for path, info in sorted(fs.find(root, withdirs=True, detail=True).items()):
        if path.rstrip("/") == root:
            continue
        if not path.startswith(root + "/"):
            raise FolderError(f"refused entry: {path!r} is not below the folder")
        try:
            name = checked_name(path[len(root) + 1 :].rstrip("/"))
        except UnsafeEntry as exc:
            raise FolderError(f"refused entry: {exc}") from exc
        if info.get("islink"):
            raise FolderError(f"refused entry: {name} is a link")
        kind = info.get("type")
        if kind == "file":
            found.append((name, path))
        elif kind != "directory":
            raise FolderError(f"refused entry: {name} is neither a file nor a folder")
    if not found:
        raise FolderError("the folder holds no file")
    return found


def _copy(fs: Any, source: str, target: Path) -> str:
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with fs.open(source, "rb") as reader, target.open("xb") as writer:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


def fetch_folder(uri: str, destination: Path, expected_sha256: str | None = None) -> str:
    """Copy the folder at `uri` to `destination` (which must not exist); return its
    folder digest. On any failure, FolderError: the caller builds in a staging folder
    and removes it, so nothing half-copied is ever served."""
    try:
        fs, root = fsspec.core.url_to_fs(uri)
        if not fs.isdir(root):
            raise FolderError(f"{shown_uri(uri)} is not a folder")
        files = listing(fs, root)
        destination.mkdir()
        digests = [(name, _copy(fs, path, destination / name)) for name, path in files]
    except FileNotFoundError as exc:
        raise FolderError(f"artifact not found: {shown_uri(uri)}") from exc
    except (OSError, ValueError, ImportError) as exc:
        # fsspec raises ValueError/ImportError for unknown protocols or missing drivers.
        reason = redact(str(exc).replace(uri, shown_uri(uri)))
        raise FolderError(f"cannot read artifact {shown_uri(uri)}: {reason}") from exc
    actual = folder_sha256(digests)
    if expected_sha256 is not None and actual != expected_sha256.lower():
        raise FolderError(
            f"folder sha256 mismatch for {shown_uri(uri)}: "
            f"expected {expected_sha256.lower()}, got {actual}"
        )
    return actual
