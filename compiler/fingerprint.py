"""Skip a compile when nothing it depends on has changed since the last one.

A compile is a pure function of the spec folder, the compiler itself (its code and
the libraries that shape its output) and the schema folder. After a successful
compile Kiln records a fingerprint of those inputs and the size and mtime of every
file it wrote (in its cache folder, never in the output). When both match again,
the output is already what a compile would write, and the compile is skipped.
Like make and git's index, this trusts file stats; `kiln compile --check` and CI
never take this shortcut.
"""

from __future__ import annotations

import hashlib
import marshal
import os
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path

from compiler import cache as disk_cache

RECORDS = "fingerprints-2"  # marshal: 75,000 stats dump and load several times faster than JSON
# Libraries whose versions change what Kiln writes or accepts.
SHAPING = (
    "pydantic",
    "pydantic-core",
    "protobuf",
    "tritonclient",
    "ruamel.yaml",
    "kubernetes-validate",
    "jsonschema-rs",
    "croniter",
)
_TEXT_SUFFIXES = (".yaml", ".yml", ".json")


@cache
def compiler_digest() -> str:
    """Digest of Kiln's own code and the versions of the libraries shaping its output."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    sources = sorted(package.rglob("*.py")) + sorted(package.rglob("*.j2"))
    # The compiler renders against the runtime's contract (signatures, the monitor config).
    sources += sorted((package.parent / "runtime" / "contract").rglob("*.py"))
    for path in sources:
        digest.update(path.relative_to(package.parent).as_posix().encode())
        digest.update(path.read_bytes() if path.is_file() else b"absent")
    for name in SHAPING:
        try:
            digest.update(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=absent".encode())
    return digest.hexdigest()


def _folder_digest(folder: Path, digest: hashlib._Hash) -> None:
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        if path.suffix in _TEXT_SUFFIXES:
            digest.update(path.read_bytes())
        else:  # model artifacts: large, and their digests are checked by the compile
            stat = path.stat()
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())


def inputs(specs: Path, schemas: Path | None) -> str | None:
    """Fingerprint of everything a compile reads; None when some of it cannot be read
    (then the compile runs in full and reports the problem where it belongs)."""
    digest = hashlib.sha256(compiler_digest().encode())
    digest.update(str(specs.resolve()).encode())
    try:
        _folder_digest(specs, digest)
        if schemas is not None:
            digest.update(str(schemas.resolve()).encode())
            _folder_digest(schemas, digest)
    except OSError:
        return None
    return digest.hexdigest()


def _stats(
    out: Path, paths: list[str], known: Mapping[str, tuple[int, int]] | None = None
) -> dict[str, tuple[int, int]]:
    """Size and mtime of each file; `known` holds those taken as the files were written."""
    stats = {}
    base = str(out)
    for path in paths:
        taken = known.get(path) if known is not None else None
        if taken is not None:
            stats[path] = taken
            continue
        stat = os.stat(f"{base}/{path}")
        stats[path] = (stat.st_size, stat.st_mtime_ns)
    return stats


def _entry(out: Path) -> str:
    return hashlib.sha256(str(out.resolve()).encode()).hexdigest()


def record(
    out: Path,
    fingerprint: str,
    owned: list[str],
    written: Mapping[str, tuple[int, int]] | None = None,
) -> None:
    """Remember the inputs and the files (`owned`: all Kiln now owns in `out`, manifest
    included; `written`: the stats of those just written) of a successful compile."""
    try:
        paths = sorted(owned)
        document = {"inputs": fingerprint, "files": _stats(out, paths, written)}
    except OSError:
        return
    disk_cache.put(RECORDS, _entry(out), marshal.dumps(document))


def unchanged(out: Path, fingerprint: str) -> int | None:
    """The number of files, when `out` is exactly what the last compile left; else None."""
    stored = disk_cache.get(RECORDS, _entry(out))
    if stored is None:
        return None
    try:
        document = marshal.loads(stored)
        files: dict[str, tuple[int, int]] = document["files"]
        if document["inputs"] != fingerprint or _stats(out, list(files)) != files:
            return None
    except (OSError, ValueError, EOFError, KeyError, TypeError):
        return None
    return len(files)
