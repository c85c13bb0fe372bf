"""`kiln monitor MODEL`: the NannyML monitoring job on this machine; `kiln label MODEL`:
ground truth for the rows a local environment served (docs/capture.md).

The job is the one the generated CronWorkflow runs (`python -m runtime.monitor`), with its
config built from the compiled specs instead of read from a file. The data is what the spec
declares for the environment (relative paths under the project's folder), or files and
fsspec URLs given with --reference and --analysis. In a `kind: local` environment the alert
events go to the local sink (printed, and written to alerts.jsonl) unless --deliver asks for
the Project's routes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compiler.cli import requires
from compiler.cli.params import env_option, require_folder, specs_option


@click.command()
@click.argument("model")
@click.option(
    "--reference", default=None, help="Reference data [default: the spec's, in this environment]."
)
@click.option(
    "--analysis", default=None, help="Analysis data [default: the spec's, in this environment]."
)
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
    default=None,
    help="Send alert events to their routes (Alertmanager, Slack, webhooks), or to nothing "
    "[default: the routes; in a local environment, the local sink].",
)
@click.option("--print-config", is_flag=True, help="Print the job's config (JSON) and stop.")
def monitor(
    model: str,
    reference: str | None,
    analysis: str | None,
    environment: str,
    specs: Path,
    out: Path | None,
    deliver: bool | None,
    print_config: bool,
) -> None:
    """Run MODEL's monitoring job (NannyML) on its data, as the spec declares it."""
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
    from runtime.monitor import local_sink
    from runtime.monitor.job import Progress, run_job

    root = specs.resolve().parent
    if config.labels is not None and analysis is not None and not ir.is_local:
        # Data given here replaces a cluster environment's store; its labels folder there
        # is not this machine's to read. A local environment's labels join as they would.
        config = config.model_copy(update={"labels": None})
    if config.labels is not None:
        labels = config.labels.model_copy(update={"uri": _in_project(config.labels.uri, root)})
        config = config.model_copy(update={"labels": labels})
    target = out or Path(".kiln") / "monitor" / model / environment
    to_sink = deliver is None and ir.is_local
    run = run_job(
        config,
        target,
        reference=reference or _in_project(config.reference.uri, root),
        analysis=analysis or _in_project(config.analysis.uri, root),
        progress=Progress(sys.stderr),
        deliver=deliver is not False,
        local_sink=to_sink,
    )
    if to_sink:
        for line in local_sink.summary(run.events):
            click.echo(line, err=True)
    click.echo(f"report: {(target / 'report.html').as_posix()}", err=True)
    sys.exit(run.exit_code)


def _in_project(uri: str, root: Path) -> str:
    """A spec's data location as this machine reads it: a relative path (a local
    environment's data store) sits under the project's folder, not the working one."""
    if "://" in uri or Path(uri).is_absolute():
        return uri
    return (root / uri).as_posix()


@click.command()
@click.argument("model")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Parquet or CSV file with the key column and the model's target column.",
)
@click.option(
    "--key",
    default=None,
    help="Column of FILE holding the served rows' request ids, written as request_id, "
    "the column the monitor joins served traffic on [default: request_id, where present].",
)
@env_option
@specs_option
def label(model: str, source: Path, key: str | None, environment: str, specs: Path) -> None:
    """Add labels for MODEL's rows; `kiln monitor` joins them (realised performance).

    FILE holds the target and a key: the served rows' request ids, or the FeatureSet's id
    column (for files and batch predictions, and captured traffic that captures it)."""
    from runtime.contract.capture import REQUEST_ID, labels_uri
    from runtime.local.labels import LabelError, write_labels

    ir = requires.model_in(specs, model, environment)
    if not ir.is_local:
        raise click.UsageError(
            f"environment {environment!r} is a cluster environment; its labels are written "
            "by the systems that learn the outcomes, to the labels folder docs/capture.md names"
        )
    folder = Path(_in_project(labels_uri(ir.storage.data, model), specs.resolve().parent))
    entity = ir.featureset.spec.entity
    keys = [(key or REQUEST_ID, REQUEST_ID), (entity, entity)]
    try:
        written, rows = write_labels(source, ir.target, folder, keys, required=key)
    except LabelError as exc:
        click.echo(f"kiln label: {exc}", err=True)
        sys.exit(1)
    click.echo(f"kiln label: {rows} label(s) of {model} written to {written.as_posix()}", err=True)


COMMANDS = (monitor, label)
