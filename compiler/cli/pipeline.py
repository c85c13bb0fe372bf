"""`kiln run` (the training pipeline on this machine) and `kiln submit` (on Argo)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from compiler.cli import requires
from compiler.cli.params import env_option, out_option, require_folder, specs_option
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
    default=None,
    help="Model store the publish step writes to [default: the environment's "
    "storage.models, where `kiln serve` reads for the local one].",
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
    store: str | None,
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
    # The plan's default store is the environment's storage.models (one definition).
    params = {} if store is None else {"store": store}
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
    target = store or dict(plan.run_parameters)["store"]
    click.echo(f"published {model_name} version {version} (sha256 {digest}) to {target}")
    click.echo(f"next: kiln promote {model_name} --version {version} (adds it to the spec)")


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


@click.command("promote")
@click.argument("model_name", metavar="MODEL")
@click.option(
    "--version",
    "wanted",
    type=click.IntRange(min=1),
    default=None,
    help="Version to promote [default: the newest in the store that passed its gates].",
)
@click.option(
    "--env",
    "environment",
    default=None,
    help="Serve it in this environment's overlay only [default: the base, every environment "
    "that does not set its own serving.version].",
)
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A folder copy of the local environment's storage.models where that is a URL "
    "[default: storage.models].",
)
@specs_option
@out_option
def promote_command(
    model_name: str,
    wanted: int | None,
    environment: str | None,
    store: Path | None,
    specs: Path,
    out: Path,
) -> None:
    """Add a published version to MODEL's spec, serve it, compile, and print the plan."""
    from compiler.api import compile_tree
    from compiler.plan.compare import make_plan
    from compiler.plan.render import render_plan
    from compiler.promotion import Refused, promote_version

    require_folder(specs)
    try:
        done = promote_version(specs, model_name, wanted, environment, store)
    except Refused as exc:
        requires.report(exc.diagnostics)
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)
    version = done.version
    where = done.spec_file.relative_to(specs.resolve().parent).as_posix()
    if not done.changed:
        click.echo(f"{where} already lists and serves {model_name} version {version.version}")
    else:
        click.echo(
            f"promoted {model_name} version {version.version} (sha256 {version.sha256[:12]}...) "
            f"in {where}: spec.versions, {done.served_at} = {version.version}"
        )
    compiled = compile_tree(specs, out)
    requires.report(compiled.diagnostics)
    if not compiled.ok or compiled.report is None:
        sys.exit(1)
    written = len(compiled.report.written) + len(compiled.report.removed)
    click.echo(f"compiled into {out.as_posix()}: {written} file(s) written or removed", err=True)
    plan = make_plan(done.before, done.after, "the specs before promote", "working tree", False)
    click.echo(render_plan(plan, "text"), nl=False)


COMMANDS = (run_command, submit_command, promote_command)
