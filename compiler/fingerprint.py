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
from dataclasses import dataclass
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


def file_digests(folder: Path) -> dict[str, str]:
    """The digest of each file under `folder`, by '/'-separated relative path: the
    sha256 of a text file's bytes, the size and mtime of any other file."""
    digests = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix in _TEXT_SUFFIXES:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        else:  # model artifacts: large, and their digests are checked by the compile
            stat = path.stat()
            digest = f"{stat.st_size}:{stat.st_mtime_ns}"
        digests[path.relative_to(folder).as_posix()] = digest
    return digests


@dataclass(frozen=True)
class Inputs:
    """Everything a compile reads, file by file (the incremental build compares the
    parts), and the fingerprint of the whole."""

    fingerprint: str
    compiler: str  # `compiler_digest()`
    schemas: str  # the schema folder's path and files
    specs: dict[str, str]  # each file of the spec folder (`file_digests`)


def _combined(*parts: str, files: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    for path, file_digest in files.items():
        digest.update(f"{path}\0{file_digest}\0".encode())
    return digest.hexdigest()


def read_inputs(specs: Path, schemas: Path | None) -> Inputs | None:
    """Everything a compile reads; None when some of it cannot be read (then the
    compile runs in full and reports the problem where it belongs)."""
    try:
        spec_files = file_digests(specs)
        schema_part = "none"
        if schemas is not None:
            schema_part = _combined(str(schemas.resolve()), files=file_digests(schemas))
    except OSError:
        return None
    compiler = compiler_digest()
    whole = _combined(compiler, str(specs.resolve()), schema_part, files=spec_files)
    return Inputs(whole, compiler, schema_part, spec_files)


def inputs(specs: Path, schemas: Path | None) -> str | None:
    """Fingerprint of everything a compile reads; None when some of it cannot be read."""
    read = read_inputs(specs, schemas)
    return read.fingerprint if read is not None else None


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


def output_key(out: Path) -> str:
    """The key of `out`'s records in the disk cache."""
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
        files = _stats(out, owned, written)
    except OSError:
        return
    record_stats(out, fingerprint, files)


def record_stats(out: Path, fingerprint: str, files: dict[str, tuple[int, int]]) -> None:
    """Remember the inputs and the stats of every file Kiln now owns in `out`."""
    document = {"inputs": fingerprint, "files": files}
    disk_cache.put(RECORDS, output_key(out), marshal.dumps(document))


@dataclass(frozen=True)
class Record:
    """What the last successful compile into an output folder left: the fingerprint
    of its inputs, and the size and mtime of every file it owns there."""

    inputs: str
    files: dict[str, tuple[int, int]]

    def untouched(self, out: Path) -> bool:
        """Whether every file is as the compile left it (by its stats)."""
        try:
            return _stats(out, list(self.files)) == self.files
        except OSError:
            return False


def load_record(out: Path) -> Record | None:
    """The record of the last compile into `out`; None when there is none, or it is damaged."""
    stored = disk_cache.get(RECORDS, output_key(out))
    if stored is None:
        return None
    try:
        document = marshal.loads(stored)  # noqa: S302 HMAC-checked cache entry
        inputs, files = document["inputs"], document["files"]
    except (ValueError, EOFError, KeyError, TypeError):
        return None
    if not isinstance(inputs, str) or not isinstance(files, dict):
        return None
    return Record(inputs, files)


def unchanged(out: Path, fingerprint: str) -> int | None:
    """The number of files, when `out` is exactly what the last compile left; else None."""
    record = load_record(out)
    if record is None or record.inputs != fingerprint or not record.untouched(out):
        return None
    return len(record.files)
