"""`kiln predict`: a batch job's scoring step, run on this machine.

The flags are the ones the compiled job passes (`compiler/targets/batch.py`): the
same artifact checks, signature, columns and all-or-nothing output. Only the rows
come from --input and go to --output, paths on this machine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from compiler.cli.params import env_option, require_folder, specs_option


@click.command()
@click.argument("model")
@click.option(
    "--input", "input_", required=True, help="Rows to score: a parquet or CSV file or folder."
)
@click.option(
    "--output",
    required=True,
    help="A .parquet file, or a folder that gets one committed run (run=NAME/) per call.",
)
@click.option(
    "--version",
    type=click.IntRange(min=1),
    default=None,
    help="Version to score with [default: the serving version].",
)
@env_option
@specs_option
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1, max=1_000_000),
    default=10_000,
    show_default=True,
    help="Rows read and scored at a time.",
)
def predict(
    model: str,
    input_: str,
    output: str,
    version: int | None,
    environment: str,
    specs: Path,
    chunk_rows: int,
) -> None:
    """Score the rows of --input with MODEL and write predictions to --output.

    The artifact's digest and signature are checked as the serving pod checks them,
    the input's columns against the signature and the FeatureSet; the output holds
    the columns the monitor reads, and appears only once every row has scored.
    """
    require_folder(specs)
    from compiler.ir.batch import BatchJobIR
    from compiler.resolve import UnknownModel, local_path, resolve
    from compiler.targets.batch import flags
    from runtime.contract.batch import BATCH
    from runtime.serving.batch import main

    resolution = resolve(specs)
    try:
        ir = resolution.find(model, environment)
    except UnknownModel as exc:
        raise click.UsageError(str(exc)) from exc
    if ir.ensemble is not None:
        raise click.UsageError(f"{model} is an ensemble; kiln predict scores single models")
    chosen = version or ir.serving.version
    artifact = next((a for a in ir.versions if a.version == chosen), None)
    if artifact is None:
        declared = ", ".join(str(a.version) for a in ir.versions) or "none"
        wanted = f"version {chosen}" if chosen else "a served version to score (give --version)"
        raise click.UsageError(f"{model} has no {wanted}; declared versions: {declared}")
    if artifact.format != "onnx":
        raise click.UsageError(
            f"{model} version {chosen} is a {artifact.format} model; kiln predict scores "
            "ONNX versions (onnxruntime)"
        )
    _refuse_overlap(input_, output)
    job = BatchJobIR("predict", input_, None, output, artifact.version, None, chunk_rows, "", "")
    values = flags(ir, job, "")
    values.update({"--input": input_, "--output": output, "--run": None})
    if artifact.local:  # project files: found from the project root, not the working folder
        values["--model"] = str(local_path(artifact.uri, resolution.root))
        if values["--bundle"] is not None:
            values["--bundle"] = str(local_path(values["--bundle"], resolution.root))
    sys.exit(main(list(BATCH.command(values)[3:])))


def _refuse_overlap(input_: str, output: str) -> None:
    """The output must not be the input, nor inside or above it: scoring would replace
    the rows it reads, or read its own predictions on the next run (KILN1662 for jobs)."""
    from compiler.rules.locations import inside

    def where(location: str) -> str:
        return location if "://" in location else os.path.abspath(location)

    source, target = where(input_).rstrip("/"), where(output).rstrip("/")
    if inside(source, target) or inside(target, source):
        raise click.UsageError(
            f"--output {output} overlaps --input {input_}: write predictions to a file or "
            "folder of their own"
        )


COMMANDS = (predict,)
