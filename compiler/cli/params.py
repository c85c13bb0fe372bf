"""Options and checks that several `kiln` commands share, defined once."""

from __future__ import annotations

from pathlib import Path

import click

from compiler.checks.schemas import SCHEMAS_ENV

FORMATS = click.Choice(["text", "github", "json"])

specs_option = click.option(
    "--specs",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("specs"),
    show_default=True,
    help="Folder of spec files.",
)
out_option = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("generated"),
    show_default=True,
    help="Output folder.",
)
schemas_option = click.option(
    "--schemas",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help=f"Folder of CRDs to validate custom resources against (or ${SCHEMAS_ENV}).",
)
env_option = click.option(
    "--env",
    "environment",
    default="local",
    show_default=True,
    help="Environment of the model.",
)
verbose_option = click.option(
    "--verbose",
    is_flag=True,
    help="Repeat notes already shown once for this project (custom resources unchecked).",
)


def require_folder(specs: Path) -> None:
    """A missing spec folder is a usage error (exit 2), not a diagnostic."""
    if not specs.is_dir():
        raise click.UsageError(f"spec folder {specs} does not exist (use --specs)")
