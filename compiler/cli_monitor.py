"""`kiln monitor MODEL`: the NannyML monitoring job on local files.

The job is the one the generated CronWorkflow runs (`python -m runtime.monitor`), with its
config built from the compiled specs instead of read from a file, and the data given as
local paths (or any fsspec URL).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compiler.cli_options import specs_option


def register(cli: click.Group) -> None:
    """Add the `monitor` command to the `kiln` group."""
    cli.add_command(monitor)


@click.command()
@click.argument("model")
@click.option("--reference", required=True, help="Reference data: parquet or CSV file or folder.")
@click.option("--analysis", required=True, help="Analysis data: parquet or CSV file or folder.")
@click.option("--env", "environment", default="local", show_default=True, help="Environment.")
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
    from compiler.api import build
    from compiler.diagnostics import render, summary
    from runtime.contract.monitor_config import config_from_ir, config_text

    if not specs.is_dir():
        raise click.UsageError(f"spec folder {specs} does not exist (use --specs)")
    result = build(specs)
    if not result.ok:
        click.echo(render(result.diagnostics, "text"))
        click.echo(summary(result.diagnostics), err=True)
        sys.exit(1)
    models = result.resolution.models
    found = [m for m in models if m.name == model and m.environment.name == environment]
    if not found:
        known = sorted({f"{m.name} ({m.environment.name})" for m in models})
        raise click.UsageError(
            f"no model {model!r} in environment {environment!r}; known: {', '.join(known)}"
        )
    ir = found[0]
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
