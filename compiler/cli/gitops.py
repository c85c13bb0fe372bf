"""`kiln plan`, `kiln explain` and `kiln rollback`: the commands of the GitOps flow."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compiler.api import build
from compiler.cli import requires
from compiler.cli.params import out_option, require_folder, specs_option
from compiler.diagnostics import render


def _write(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8", newline="\n")


@click.command("plan")
@click.option("--base", "ref", required=True, help="Git revision to compare with.")
@specs_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "text"]),
    default="markdown",
    show_default=True,
    help="Markdown for a pull request comment (always under GitHub's limit), text for a terminal.",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the plan to this file instead of stdout.",
)
def plan_command(ref: str, specs: Path, fmt: str, out_file: Path | None) -> None:
    """What the change from a base revision to the working tree does, in words."""
    from compiler.plan import GitError, plan_change, render_failure, render_plan

    require_folder(specs)
    head = build(specs)
    if not head.ok:
        requires.report(head.diagnostics)
        if out_file is not None:
            _write(render_failure(head.diagnostics, fmt), out_file)
        sys.exit(1)
    try:
        plan = plan_change(specs, ref, head)
    except GitError as exc:
        raise click.UsageError(str(exc)) from exc
    _write(render_plan(plan, fmt), out_file)
    if out_file is not None:
        click.echo(f"wrote the plan to {out_file.as_posix()}", err=True)


@click.command("explain")
@click.argument("path", type=click.Path(path_type=Path))
@specs_option
@out_option
def explain_command(path: Path, specs: Path, out: Path) -> None:
    """Which spec files and lines produced a generated file."""
    from compiler.explain import NotGenerated, explain

    require_folder(specs)
    result = requires.built(specs)
    try:
        click.echo(explain(result, path, out), nl=False)
    except NotGenerated as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@click.command("rollback")
@click.argument("model_name", metavar="MODEL")
@click.option("--env", "environment", default=None, help="Environment to roll back (--to VERSION).")
@click.option(
    "--to",
    "target",
    default=None,
    metavar="REF|VERSION",
    help="A version number to serve, or a git revision to restore the model's spec from. "
    "Without it: revert the last commit that changed the model's spec.",
)
@specs_option
@out_option
def rollback_command(
    model_name: str, environment: str | None, target: str | None, specs: Path, out: Path
) -> None:
    """Prepare a rollback as a local git commit (never pushed)."""
    from compiler.rollback import Refused, rollback

    require_folder(specs)
    if environment is not None and (target is None or not target.isdigit()):
        raise click.UsageError(
            "--env goes with --to VERSION: restoring or reverting the spec file changes "
            "every environment at once"
        )
    try:
        outcome = rollback(specs, out, model_name, environment, target)
    except Refused as exc:
        click.echo(f"refused: {exc}", err=True)
        if exc.diagnostics:
            click.echo(render(exc.diagnostics, "text"), err=True)
        sys.exit(1)
    click.echo(outcome, nl=False)


COMMANDS = (plan_command, explain_command, rollback_command)
