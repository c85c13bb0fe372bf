"""Options and checks that several `kiln` commands share, defined once."""

from __future__ import annotations

from pathlib import Path

import click

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


def require_folder(specs: Path) -> None:
    """A missing spec folder is a usage error (exit 2), not a diagnostic."""
    if not specs.is_dir():
        raise click.UsageError(f"spec folder {specs} does not exist (use --specs)")
