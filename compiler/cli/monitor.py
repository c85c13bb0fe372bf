"""`kiln monitor MODEL`: the NannyML monitoring job on local files.

The job is the one the generated CronWorkflow runs (`python -m runtime.monitor`), with its
config built from the compiled specs instead of read from a file, and the data given as
local paths (or any fsspec URL).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compiler.cli import requires
from compiler.cli.params import env_option, require_folder, specs_option


@click.command()
@click.argument("model")
@click.option("--reference", required=True, help="Reference data: parquet or CSV file or folder.")
@click.option("--analysis", required=True, help="Analysis data: parquet or CSV file or folder.")
@env_option
@specs_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder [default: .kiln/monitor/MODEL/ENV].",
)
@click.option(
    "--deliver/--no-deliver",
    default=True,
    show_default=True,
    help="Send alert events to their routes (Alertmanager, Slack, webhooks).",
)
@click.option("--print-config", is_flag=True, help="Print the job's config (JSON) and stop.")
def monitor(
    model: str,
    reference: str,
    analysis: str,
    environment: str,
    specs: Path,
    out: Path | None,
    deliver: bool,
    print_config: bool,
) -> None:
    """Run MODEL's monitoring job (NannyML) on local reference and analysis data."""
    from compiler.targets.monitor_config import config_from_ir
    from runtime.contract.monitor_config import config_text

    require_folder(specs)
    ir = requires.model_in(specs, model, environment)
    if ir.monitoring is None:
        raise click.UsageError(f"model {model!r} declares no monitoring block")
    try:
        config = config_from_ir(ir)
    except ValueError as exc:
        click.echo(f"kiln monitor: {model} ({environment}): {exc}", err=True)
        sys.exit(1)
    if print_config:
        click.echo(config_text(config), nl=False)
        return
    from runtime.monitor.job import Progress, run_job

    target = out or Path(".kiln") / "monitor" / model / environment
    run = run_job(
        config,
        target,
        reference=reference,
        analysis=analysis,
        progress=Progress(sys.stderr),
        deliver=deliver,
    )
    click.echo(f"report: {(target / 'report.html').as_posix()}", err=True)
    sys.exit(run.exit_code)


COMMANDS = (monitor,)
