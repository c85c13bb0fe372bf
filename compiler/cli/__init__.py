"""The `kiln` command: one module per group of commands, over the public API.

    build.py     validate, compile, schema
    new.py       new (specs inferred from a data file)
    gitops.py    plan, explain, rollback
    pipeline.py  run, submit
    serving.py   serve, smoke
    batch.py     predict
    monitor.py   monitor
    params.py    the options several commands share
    requires.py  what commands need before they start: a build, its diagnostics
                 printed, a model found by name and environment

Each command parses its flags, calls the API or a runtime tool, and prints; the
work lives below. Heavy modules are imported inside the command that needs them,
so `kiln compile` does not pay for Triton or NannyML.
"""

from __future__ import annotations

import sys
import traceback

import click

from compiler import __version__
from compiler.cli import batch, build, gitops, monitor, new, pipeline, serving


@click.group()
@click.version_option(__version__, prog_name="kiln")
def cli() -> None:
    """Kiln compiles declarative ML specs into Triton, Argo and NannyML deployments."""


for _group in (build, new, pipeline, serving, batch, monitor, gitops):
    for _command in _group.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Entry point: usage errors exit 2 (click), internal failures exit 2 too."""
    try:
        cli.main(standalone_mode=True)
    except SystemExit:
        raise
    except Exception:  # an internal failure, never a user's mistake
        traceback.print_exc()
        click.echo("kiln: internal error (a bug in Kiln); please report it", err=True)
        sys.exit(2)
