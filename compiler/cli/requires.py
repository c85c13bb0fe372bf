"""What commands need before they start, written once (after dbt's `cli/requires.py`).

A build whose diagnostics are printed (and that exits 1 when it failed), the
"custom resources not schema-checked" note, and a model found by name and
environment with a usage error that lists what exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compiler import cache
from compiler.api import CompileResult, build
from compiler.checks.schemas import SCHEMAS_ENV
from compiler.diagnostics import Diagnostic, render, summary
from compiler.ir import ModelIR
from compiler.resolve import UnknownModel

NOTED = "noted-unchecked"  # cache folder: which notes this project has already seen


def report(diagnostics: list[Diagnostic], fmt: str = "text") -> None:
    """Print the diagnostics (stdout) and, as text, their summary line (stderr)."""
    if diagnostics or fmt == "json":
        click.echo(render(diagnostics, fmt))
    if fmt == "text" and diagnostics:
        click.echo(summary(diagnostics), err=True)


def note_unchecked(kinds: list[str], specs: Path, verbose: bool = False) -> None:
    """Say which custom resources were not schema-checked: once per project and list of
    kinds (remembered in Kiln's cache folder), or every time with --verbose."""
    if not kinds:
        return
    text = (
        f"note: custom resources not schema-checked ({', '.join(kinds)}): "
        f"give --schemas DIR or set {SCHEMAS_ENV}"
    )
    if not verbose and not _first_time(text, specs):
        return
    click.echo(text, err=True)


def _first_time(text: str, specs: Path) -> bool:
    entry = cache.key(str(specs.resolve()), text)
    if cache.get(NOTED, entry) is not None:
        return False
    cache.put(NOTED, entry, b"")  # a cache that cannot be written repeats the note
    return True


def built(specs: Path) -> CompileResult:
    """A full build of the specs with every object kept; on any error, print and exit 1."""
    result = build(specs)
    if not result.ok:
        report(result.diagnostics)
        sys.exit(1)
    return result


def find_model(result: CompileResult, name: str, environment: str) -> ModelIR:
    """The model `name` in `environment` of a build, or a usage error listing what exists."""
    try:
        return result.resolution.find(name, environment)
    except UnknownModel as exc:
        raise click.UsageError(str(exc)) from exc


def model_in(specs: Path, name: str, environment: str) -> ModelIR:
    """Build the specs (exit 1 on errors) and find one model in them."""
    return find_model(built(specs), name, environment)
