"""The `kiln` command: parse flags, call the API, print. Nothing else lives here."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from compiler import __version__
from compiler.api import build, compile_tree
from compiler.checks.schemas import SCHEMAS_ENV
from compiler.cli_options import out_option, require_folder, specs_option
from compiler.diagnostics import Diagnostic, render, summary
from compiler.emit import WriteBack

FORMATS = click.Choice(["text", "github", "json"])


schemas_option = click.option(
    "--schemas",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help=f"Folder of CRDs to validate custom resources against (or ${SCHEMAS_ENV}).",
)


def _note_unchecked(kinds: list[str]) -> None:
    if kinds:
        click.echo(
            f"note: custom resources not schema-checked ({', '.join(kinds)}): "
            f"give --schemas DIR or set {SCHEMAS_ENV}",
            err=True,
        )


def _report(diagnostics: list[Diagnostic], fmt: str) -> None:
    if diagnostics or fmt == "json":
        click.echo(render(diagnostics, fmt))
    if fmt == "text" and diagnostics:
        click.echo(summary(diagnostics), err=True)


@click.group()
@click.version_option(__version__, prog_name="kiln")
def cli() -> None:
    """Kiln compiles declarative ML specs into Triton, Argo and NannyML deployments."""


@cli.command()
@specs_option
@schemas_option
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def validate(specs: Path, schemas: Path | None, fmt: str) -> None:
    """Load, parse, resolve and check every spec and what it renders; print diagnostics."""
    require_folder(specs)
    result = build(specs, schemas, keep_documents=False)
    _report(result.diagnostics, fmt)
    _note_unchecked(result.unchecked_kinds)
    if fmt == "text" and result.ok:
        click.echo(
            f"ok: {result.model_environments} model-environment(s), "
            f"{len(result.artifacts)} file(s) would be generated",
            err=True,
        )
    sys.exit(0 if result.ok else 1)


@cli.command(name="compile")
@specs_option
@out_option
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if the output is stale.")
@click.option("--diff", is_flag=True, help="Change nothing; print what would change.")
@click.option("--force", is_flag=True, help="Rebuild even when nothing changed since last time.")
@schemas_option
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def compile_command(
    specs: Path, out: Path, check: bool, diff: bool, force: bool, schemas: Path | None, fmt: str
) -> None:
    """Compile the specs into the output folder."""
    require_folder(specs)
    if check and diff:
        raise click.UsageError("--check and --diff cannot be combined")
    mode = WriteBack.CHECK if check else WriteBack.DIFF if diff else WriteBack.YES
    result = compile_tree(specs, out, mode, schemas, force)
    _report(result.diagnostics, fmt)
    _note_unchecked(result.unchecked_kinds)
    report = result.report
    if report is None or not result.ok:
        sys.exit(1)
    if mode is WriteBack.DIFF:
        if report.diff:
            click.echo(report.diff, nl=False)
        sys.exit(0)
    if mode is WriteBack.CHECK:
        click.echo(f"{out.as_posix()} is up to date ({report.unchanged} files)", err=True)
        sys.exit(0)
    if result.up_to_date:
        click.echo(
            f"{out.as_posix()} is up to date: no spec, schema or Kiln file changed since the "
            f"last compile ({report.unchanged} files)",
            err=True,
        )
        return
    click.echo(
        f"compiled {result.model_environments} model-environment(s) into {out.as_posix()}: "
        f"{len(report.written)} written, {len(report.removed)} removed, "
        f"{report.unchanged} unchanged",
        err=True,
    )


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write one schema file per kind; stdout when absent.",
)
def schema(out: Path | None) -> None:
    """JSON Schema of every kind, for editors."""
    from compiler.schema import schema_files

    files = schema_files()
    if out is None:
        click.echo(_all_in_one(files))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    click.echo(f"wrote {len(files)} schema files to {out.as_posix()}", err=True)


def _all_in_one(files: dict[str, str]) -> str:
    import json

    bundle = {name: json.loads(text) for name, text in files.items()}
    return json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False)


def _register_extensions() -> None:
    # Each group of commands lives in a module of its own, imported lazily by click.
    from compiler import cli_gitops, cli_monitor, cli_pipeline, cli_runtime

    for module in (cli_pipeline, cli_runtime, cli_monitor, cli_gitops):
        module.register(cli)


_register_extensions()


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
