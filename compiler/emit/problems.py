"""What emit reports about the output folder: the KILN19xx diagnostics."""

from __future__ import annotations

from pathlib import Path

from compiler.diagnostics import Diagnostic, Severity
from compiler.emit.manifest import MANIFEST

_MOVE_IT = "move it away, or compile to another --out"


def display(out: Path, relative: str) -> str:
    """A file of the output as diagnostics and diffs name it."""
    return (out / relative).as_posix()


def not_ours(out: Path, path: str) -> Diagnostic:
    """A changed file exists, and the last manifest does not list it (KILN1901)."""
    message = "Kiln would overwrite this file, which it did not write"
    return Diagnostic(display(out, path), 1, 1, "KILN1901", message, hint=_MOVE_IT)


def blocked(out: Path, path: str) -> Diagnostic:
    """A folder or a file stands where a new file or its folder must go (KILN1901)."""
    message = "Kiln cannot write this file: a folder or file it did not write is in the way"
    return Diagnostic(display(out, path), 1, 1, "KILN1901", message, hint=_MOVE_IT)


def stale(out: Path, path: str, message: str) -> Diagnostic:
    """`--check` found a file that differs from the compile's (KILN1902)."""
    return Diagnostic(display(out, path), 1, 1, "KILN1902", message)


def cannot_write(out: Path, exc: OSError) -> Diagnostic:
    """Writing failed half-way (KILN1903)."""
    return Diagnostic(display(out, ""), 1, 1, "KILN1903", f"cannot write output: {exc}")


def linked_output(out: Path) -> Diagnostic:
    """The output folder is a symbolic link, which Kiln does not follow (KILN1904)."""
    message = "the output folder is a symbolic link; Kiln writes through no link"
    hint = (
        "delete the link (a checkout may carry one that points anywhere), or pass the real folder"
    )
    return Diagnostic(display(out, ""), 1, 1, "KILN1904", message, hint=hint)


def left_in_place(out: Path, path: str, why: str) -> Diagnostic:
    """A file no longer produced that Kiln does not delete (KILN1905, a warning)."""
    message = f"no spec produces this file any more, but Kiln leaves it: {why}"
    hint = "delete it yourself if it is not needed"
    return Diagnostic(
        display(out, path), 1, 1, "KILN1905", message, hint=hint, severity=Severity.WARNING
    )


def refused_entry(out: Path, entry: str) -> Diagnostic:
    """A manifest entry that is not a path inside the output folder (KILN1906, a warning)."""
    message = f"the manifest lists {entry!r}, which is not a path inside the output folder"
    hint = "Kiln ignores the entry and never reads, writes or deletes it; the next compile drops it"
    return Diagnostic(
        display(out, MANIFEST), 1, 1, "KILN1906", message, hint=hint, severity=Severity.WARNING
    )
