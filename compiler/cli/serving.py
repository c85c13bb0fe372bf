"""`kiln serve` and `kiln smoke`: the local Triton lifecycle, as thin click commands.

The compiled model is handed over as a `ServedModel` (`compiler/served.py`); the work is
in runtime/local/serve.py and runtime/serving/smoke.py, imported only when a command
runs so that `kiln compile` does not pay for them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from compiler.cli.params import env_option, require_folder, specs_option
from compiler.ir import ModelIR
from runtime.contract.served import ServedModel

_port = click.IntRange(0, 65535)


@click.command()
@click.argument("model")
@env_option
@specs_option
@click.option(
    "--generated",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("generated"),
    show_default=True,
    help="Compiled output folder (kiln compile --out).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--http-port", type=_port, default=8000, show_default=True, help="0: a free port.")
@click.option("--grpc-port", type=_port, default=8001, show_default=True, help="0: a free port.")
@click.option("--metrics-port", type=_port, default=8002, show_default=True, help="0: a free port.")
@click.option(
    "--metrics/--no-metrics",
    default=True,
    show_default=True,
    help="Serve Prometheus metrics (CPU and per-model inference counters).",
)
@click.option(
    "--ready-timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the model to be ready.",
)
def serve(
    model: str,
    environment: str,
    specs: Path,
    generated: Path,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    metrics: bool,
    ready_timeout: float,
) -> None:
    """Serve MODEL with a real Triton server on this machine (CPU, python backend).

    Assembles .kiln/serve/MODEL/ from the compiled config and the verified
    artifacts, starts tritonserver, waits until the model is ready, prints the
    endpoints and runs until Ctrl-C.
    """
    require_folder(specs)
    from runtime.local.serve import serve as run_server

    sys.exit(
        run_server(
            _served(specs, model, environment, generated),
            host,
            http_port,
            grpc_port,
            metrics_port if metrics else None,
            ready_timeout,
        )
    )


@click.command()
@click.argument("model")
@click.option(
    "--url",
    default=None,
    help="Triton's address, host:port [default: 127.0.0.1:8000 for http, :8001 for grpc].",
)
@click.option("--protocol", type=click.Choice(["http", "grpc"]), default="http", show_default=True)
@env_option
@specs_option
@click.option(
    "--data",
    default=None,
    help="Sample rows: a .parquet or .csv path or URL [default: NannyML's reference data].",
)
@click.option(
    "--rows", type=click.IntRange(min=1), default=256, show_default=True, help="Rows to infer."
)
@click.option(
    "--requests",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Single-row requests for the latency summary (0: none).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds per call before the server counts as unresponsive.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for the model to become ready.",
)
@click.option(
    "--max-latency-p99-ms",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Fail when the p99 of the latency requests is above this (the cluster's smoke Job "
    "passes the analysis's ceiling).",
)
def smoke(
    model: str,
    url: str | None,
    protocol: str,
    environment: str,
    specs: Path,
    data: str | None,
    rows: int,
    requests: int,
    timeout: float,
    wait: float,
    max_latency_p99_ms: float | None,
) -> None:
    """Check a running Triton against MODEL's spec: signature, results, latency.

    Exits 1 with a message naming the tensor on any mismatch.
    """
    require_folder(specs)
    from compiler.served import NotServable, artifact_sources, model_ir
    from compiler.targets.serving import signature
    from runtime.serving.smoke import run

    address = url or ("127.0.0.1:8000" if protocol == "http" else "127.0.0.1:8001")
    try:
        ir, root = model_ir(specs, model, environment)
        references = _ensemble_references(ir, root)
    except NotServable as exc:
        click.echo(f"FAIL setup: {exc}")
        sys.exit(1)
    sys.exit(
        run(
            signature(ir),
            artifact_sources(ir, root),
            address,
            protocol,
            environment,
            data,
            rows,
            requests,
            timeout,
            wait,
            out=click.echo,
            max_latency_p99_ms=max_latency_p99_ms,
            references=references,
            model_format=ir.format.name,
            parameters=dict(ir.format.parameters),
            # Locally the adapter runs the very library smoke compares with.
            exact=ir.is_local,
        )
    )


def _ensemble_references(ir: ModelIR, root: Path) -> dict[int, Any] | None:
    """An ensemble's pipeline computed in process, the reference of its one version."""
    from compiler.served import NotServable, ensemble_parts
    from runtime.serving.ensemble_reference import ReferenceError, ensemble_reference

    if ir.ensemble is None:
        return None
    config_text, steps = ensemble_parts(ir, root)
    try:
        return {ir.ensemble.version: ensemble_reference(config_text, steps)}
    except ReferenceError as exc:
        raise NotServable(str(exc)) from exc


def _served(specs: Path, model: str, environment: str, generated: Path) -> ServedModel:
    """The compiled model, or exit 1 with the reason."""
    from compiler.served import NotServable, served_model

    try:
        return served_model(specs, model, environment, generated)
    except NotServable as exc:
        click.echo(f"kiln serve: error: {exc}", err=True)
        sys.exit(1)


COMMANDS = (serve, smoke)
