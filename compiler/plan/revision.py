"""The base revision's specs, read from git objects only.

`git ls-tree` + `git cat-file --batch` write the files into a temporary folder;
the working tree, the index and HEAD are never touched.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


class GitError(Exception):
    """A git command failed; the message is git's own, for a person to read."""


def git(args: list[str], cwd: Path, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip() or f"git {args[0]} failed"
        raise GitError(message)
    return done.stdout


def repository_root(path: Path) -> Path:
    """The top folder of the git repository that holds `path`."""
    start = path if path.is_dir() else path.parent
    while not start.exists():
        start = start.parent
    try:
        top = git(["rev-parse", "--show-toplevel"], start).decode("utf-8").strip()
    except GitError as exc:
        raise GitError(f"{path.as_posix()} is not inside a git repository") from exc
    return Path(top).resolve()


def resolve_commit(root: Path, ref: str) -> str:
    if ref.startswith("-"):
        raise GitError(f"{ref!r} is not a revision")
    try:
        return git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root).decode().strip()
    except GitError as exc:
        raise GitError(f"unknown revision {ref!r} (fetch it first?)") from exc


def relative_to_root(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError as exc:
        raise GitError(f"{path.as_posix()} is outside the repository at {root.name}") from exc


def _parse_batch(output: bytes, count: int) -> list[bytes]:
    """Blobs from `git cat-file --batch`: a header line, the bytes, a newline, each."""
    blobs: list[bytes] = []
    at = 0
    for _ in range(count):
        end = output.index(b"\n", at)
        header = output[at:end].split()
        if len(header) != 3 or header[1] != b"blob":
            raise GitError(f"unexpected object in git output: {header!r}")
        size = int(header[2])
        blobs.append(output[end + 1 : end + 1 + size])
        at = end + 1 + size + 1
    return blobs


def export_tree(root: Path, commit: str, relative: str, into: Path) -> int:
    """Write the files under `relative` at `commit` into `into`; return how many.

    Symbolic links and submodules are skipped: a spec tree holds plain files.
    """
    pathspec = [] if relative in ("", ".") else ["--", relative]
    listing = git(["ls-tree", "-r", "-z", "--full-tree", commit, *pathspec], root)
    entries: list[tuple[str, str]] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_name = record.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        if kind == "blob" and mode in ("100644", "100755"):
            entries.append((oid, raw_name.decode("utf-8", "surrogateescape")))
    if not entries:
        return 0
    stdin = "".join(f"{oid}\n" for oid, _ in entries).encode()
    blobs = _parse_batch(git(["cat-file", "--batch"], root, stdin), len(entries))
    prefix = PurePosixPath(relative) if relative not in ("", ".") else PurePosixPath()
    for (_, name), data in zip(entries, blobs, strict=True):
        inner = PurePosixPath(name).relative_to(prefix)
        if any(part in ("", "..") for part in inner.parts):
            continue
        target = into.joinpath(*inner.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return len(entries)


@dataclass(frozen=True)
class BaseTree:
    ref: str
    commit: str
    specs: Path  # the exported spec folder, inside a temporary folder
    files: int  # how many files the revision holds under the spec folder


@contextmanager
def base_specs(specs: Path, ref: str) -> Iterator[BaseTree]:
    """The spec folder as it is at `ref`, exported into a temporary folder.

    The export keeps the spec folder's name, so that display paths (relative to
    its parent) and project-relative artifact paths read the same on both sides.
    """
    root = repository_root(specs)
    commit = resolve_commit(root, ref)
    relative = relative_to_root(specs, root)
    with tempfile.TemporaryDirectory(prefix="kiln-plan-") as temporary:
        name = relative if relative not in ("", ".") else root.name
        folder = Path(temporary).joinpath(*PurePosixPath(name).parts)
        folder.mkdir(parents=True)
        count = export_tree(root, commit, relative, folder)
        yield BaseTree(ref, commit, folder, count)
