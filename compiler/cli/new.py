"""`kiln new`: a FeatureSet and a Model spec inferred from a data file."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import cast

import click

from compiler.cli.params import require_folder, specs_option
from runtime.contract.vocabulary import TASKS, Task


@click.command("new")
@click.argument("name")
@click.option(
    "--data",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A CSV or Parquet file (a sample is enough) to infer the features from.",
)
@click.option("--target", required=True, help="The column the model predicts.")
@click.option("--task", required=True, type=click.Choice(TASKS), help="Kind of prediction.")
@click.option("--timestamp", default=None, help="Event-time column (default: the only one).")
@click.option("--id", "entity", default=None, help="Entity column (default: the id-like one).")
@click.option("--exclude", multiple=True, help="A column that is not a feature (repeatable).")
@click.option(
    "--source",
    default=None,
    help="The FeatureSet's source.uri, under each environment's data store "
    "[default: NAME/<file name>].",
)
@specs_option
def new_command(
    name: str,
    data: Path,
    target: str,
    task: str,
    timestamp: str | None,
    entity: str | None,
    exclude: tuple[str, ...],
    source: str | None,
    specs: Path,
) -> None:
    """Write featuresets/NAME.yaml and models/NAME.yaml, inferred from the data in FILE."""
    from compiler.scaffold import write

    require_folder(specs)
    _check_name(name)
    targets = {"FeatureSet": specs / "featuresets" / f"{name}.yaml"}
    targets["Model"] = specs / "models" / f"{name}.yaml"
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing:
        raise click.ClickException(
            f"{' and '.join(existing)} already exist(s); Kiln never overwrites a spec: "
            "pick another NAME or remove the file"
        )
    try:
        chosen = cast(Task, task)  # click.Choice(TASKS) let only a Task through
        scaffold = write.scaffold(name, data, chosen, target, timestamp, entity, exclude, source)
    except write.ScaffoldError as error:
        raise click.ClickException(str(error)) from None
    _write_all({targets["FeatureSet"]: scaffold.featureset, targets["Model"]: scaffold.model})
    click.echo(scaffold.summary(targets["FeatureSet"], targets["Model"]))


def _check_name(name: str) -> None:
    from compiler.spec.documents import MODEL_NAME_MAX
    from compiler.spec.types import DNS_LABEL

    if not re.fullmatch(DNS_LABEL, name) or len(name) > MODEL_NAME_MAX:
        raise click.UsageError(
            f"NAME {name!r} is not a model name: lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit, at most {MODEL_NAME_MAX} characters"
        )


def _write_all(files: dict[Path, str]) -> None:
    """Both files or neither: each is written beside its target first, then renamed."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            staged.append((Path(name), path))
        for staged_file, path in staged:
            os.replace(staged_file, path)
    finally:
        for staged_file, _ in staged:
            staged_file.unlink(missing_ok=True)


COMMANDS = [new_command]
