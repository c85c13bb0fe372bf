"""`kiln run` (the training pipeline on this machine) and `kiln submit` (on Argo)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from compiler.cli import requires
from compiler.cli.params import env_option, require_folder, specs_option
from compiler.targets import pipeline


def _next_run(runs: Path) -> Path:
    runs.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name.split("-")[1]) for p in runs.glob("run-*") if p.name[4:].isdigit()]
    return runs / f"run-{max(numbers, default=0) + 1}"


def signing_environment(root: Path) -> dict[str, str]:
    """This environment, with this machine's key pair as the publish step's signing key
    unless a key or a Sigstore token is set already (made on first use, outside `root`)."""
    from runtime.contract.signing import IDENTITY_TOKEN_ENV, SIGNING_KEY_ENV
    from runtime.local.keys import LocalKeyError, local_key_pair

    environ = dict(os.environ)
    if environ.get(SIGNING_KEY_ENV) or environ.get(IDENTITY_TOKEN_ENV):
        return environ
    try:
        pair = local_key_pair(root)
    except LocalKeyError as exc:
        raise click.ClickException(str(exc)) from exc
    environ[SIGNING_KEY_ENV] = str(pair.private)
    return environ


@click.command("run")
@click.argument("model_name", metavar="MODEL")
@click.option("--local", is_flag=True, help="Run on this machine (the only mode so far).")
@env_option
@specs_option
@click.option(
    "--runs", type=click.Path(file_okay=False, path_type=Path), default=Path(".kiln/runs")
)
@click.option(
    "--store",
    default=".kiln/store",
    show_default=True,
    help="Model store the publish step writes to.",
)
@click.option("--seed", type=int, default=None, help="Override the spec's training seed.")
@click.option(
    "--as-of",
    default=None,
    help="Snapshot the FeatureSet as of this ISO 8601 time [default: when the run starts].",
)
def run_command(
    model_name: str,
    local: bool,
    environment: str,
    specs: Path,
    runs: Path,
    store: str,
    seed: int | None,
    as_of: str | None,
) -> None:
    """Run MODEL's training pipeline: features, train, evaluate, validate, publish."""
    from runtime.local import local_run

    if not local:
        raise click.UsageError("only --local runs exist; use `kiln submit` for Argo")
    require_folder(specs)
    model = requires.model_in(specs, model_name, environment)
    plan = pipeline.pipeline(model)
    if plan is None:
        raise click.UsageError(f"{model_name} declares no training block")
    root = specs.resolve().parent
    run_dir = _next_run(runs / model_name)
    params = {"store": store}
    if seed is not None:
        params["seed"] = str(seed)
    if as_of is not None:
        params["as-of"] = as_of
    environ = signing_environment(root)
    click.echo(f"running {model_name}'s pipeline locally in {run_dir}")
    try:
        local_run.run(json.loads(plan.to_json()), root, run_dir, params, click.echo, environ)
    except (local_run.StepFailed, local_run.MissingSecret) as failure:
        click.echo(f"error: {failure}", err=True)
        sys.exit(1)
    digest = (run_dir / "publish" / "sha256").read_text(encoding="utf-8").strip()
    entry = (run_dir / "publish" / "version.yaml").read_text(encoding="utf-8")
    version = next(
        (
            line.split(":", 1)[1].strip()
            for line in entry.splitlines()
            if line.startswith("version:")
        ),
        dict(plan.run_parameters)["version"],
    )
    click.echo(f"published {model_name} version {version} (sha256 {digest}) to {store}")
    patch = run_dir / "publish" / "spec.patch"
    if patch.is_file():
        click.echo(f"spec change: {patch} (git apply it to add the version)")


@click.command("submit")
@click.argument("model_name", metavar="MODEL")
@click.option("--env", "environment", required=True, help="Cluster environment.")
@specs_option
@click.option(
    "--server", envvar="ARGO_SERVER", required=True, help="Argo Server URL ($ARGO_SERVER)."
)
@click.option(
    "--token-env",
    default="ARGO_TOKEN",
    show_default=True,
    help="Environment variable holding the Argo Server token.",
)
@click.option("-p", "--parameter", "parameters", multiple=True, help="NAME=VALUE, repeatable.")
@click.option("--insecure", is_flag=True, help="Do not verify the server's TLS certificate.")
def submit_command(
    model_name: str,
    environment: str,
    specs: Path,
    server: str,
    token_env: str,
    parameters: tuple[str, ...],
    insecure: bool,
) -> None:
    """Start a run of MODEL's training WorkflowTemplate through the Argo Server API."""
    from compiler import argo_submit

    require_folder(specs)
    model = requires.model_in(specs, model_name, environment)
    if model.is_local:
        raise click.UsageError("use `kiln run --local` for the local environment")
    if pipeline.pipeline(model) is None:
        raise click.UsageError(f"{model_name} declares no training block")
    for parameter in parameters:
        if "=" not in parameter:
            raise click.UsageError(f"parameter {parameter!r} is not NAME=VALUE")
    token = os.environ.get(token_env, "")
    try:
        name = argo_submit.submit(model, server, token, list(parameters), verify=not insecure)
    except argo_submit.SubmitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"submitted workflow {name} in namespace {model.namespace}")


COMMANDS = (run_command, submit_command)
