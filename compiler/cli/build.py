"""`kiln validate`, `kiln compile` and `kiln schema`: the compiler's own commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compiler.api import build, compile_tree
from compiler.cli import requires
from compiler.cli.params import (
    FORMATS,
    out_option,
    require_folder,
    schemas_option,
    specs_option,
    verbose_option,
)
from compiler.emit import MANIFEST, WriteBack


@click.command()
@specs_option
@schemas_option
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@verbose_option
def validate(specs: Path, schemas: Path | None, fmt: str, verbose: bool) -> None:
    """Load, parse, resolve and check every spec and what it renders; print diagnostics."""
    require_folder(specs)
    result = build(specs, schemas, keep_documents=False)
    requires.report(result.diagnostics, fmt)
    requires.note_unchecked(result.unchecked_kinds, specs, verbose)
    if fmt == "text" and result.ok:
        # Counted as `kiln compile` counts what it writes: the manifest is a file too.
        click.echo(
            f"ok: {result.model_environments} model-environment(s), "
            f"{len(result.artifacts) + 1} file(s) would be generated ({MANIFEST} included)",
            err=True,
        )
    sys.exit(0 if result.ok else 1)


@click.command(name="compile")
@specs_option
@out_option
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if the output is stale.")
@click.option("--diff", is_flag=True, help="Change nothing; print what would change.")
@click.option("--force", is_flag=True, help="Rebuild even when nothing changed since last time.")
@schemas_option
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@verbose_option
def compile_command(
    specs: Path,
    out: Path,
    check: bool,
    diff: bool,
    force: bool,
    schemas: Path | None,
    fmt: str,
    verbose: bool,
) -> None:
    """Compile the specs into the output folder."""
    require_folder(specs)
    if check and diff:
        raise click.UsageError("--check and --diff cannot be combined")
    mode = WriteBack.CHECK if check else WriteBack.DIFF if diff else WriteBack.YES
    result = compile_tree(specs, out, mode, schemas, force)
    requires.report(result.diagnostics, fmt)
    requires.note_unchecked(result.unchecked_kinds, specs, verbose)
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
    done = (
        f"recompiled {result.rebuilt} of {result.model_environments} model-environment(s)"
        if result.incremental
        else f"compiled {result.model_environments} model-environment(s)"
    )
    click.echo(
        f"{done} into {out.as_posix()}: {len(report.written)} written, "
        f"{len(report.removed)} removed, {report.unchanged} unchanged",
        err=True,
    )


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write one schema file per kind; stdout when absent.",
)
def schema(out: Path | None) -> None:
    """JSON Schema of every kind, for editors."""
    from compiler.editor_schema import schema_files

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


COMMANDS = (validate, compile_command, schema)
