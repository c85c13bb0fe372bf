"""`kiln serve`: a real Triton server on this machine for a locally compiled model.

What it does, in order:

1. take the compiled model (`runtime.contract.served.ServedModel`: the compiled
   `generated/<env>/<model>/triton/config.pbtxt`, the signature and the served
   artifacts), which `kiln serve` builds after checking the config is up to date;
2. assemble a model repository under `.kiln/serve/<model>/repository` with every
   served version's artifact (sha256 and signature verified, as the serving pod's
   init container does; this machine's key pair, runtime/local/keys.py, is trusted
   besides the environment's `signing` section) and the python-backend adapter. A
   failure stops here: nothing is downloaded or started;
3. get `tritonserver` from the `nvidia-pytriton` wheel and a cached backend venv
   (numpy < 2, onnxruntime) for the python stub;
4. start Triton in explicit model-control mode on loopback, wait until the model
   is ready, print the endpoints, and stop the whole process group on Ctrl-C or
   SIGTERM.

The `TritonServer` class is also what the integration tests and the serving
benchmark use.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

from runtime.contract import capture as capture_contract
from runtime.contract import torch_predict, tree_predict, xgboost_file
from runtime.contract.formats import FORMATS
from runtime.contract.served import ServedModel
from runtime.contract.triton_config import ConfigError, read_config, served_format
from runtime.local.backend_env import (
    BackendEnv,
    BackendEnvError,
    check_stub,
    ensure_backend_env,
    stub_environment,
)
from runtime.local.ensemble import assemble_ensemble
from runtime.local.keys import LocalKeyError, local_key_pair
from runtime.local.triton_dist import (
    DistributionError,
    PlatformError,
    TritonDistribution,
    default_cache,
    ensure_triton,
)
from runtime.serving import capture_writer
from runtime.serving.assemble import AssembleError, assemble, checked

ADAPTER = Path(__file__).resolve().parent / "triton_backend" / "model.py"
# Copied beside the adapter: the capture writer and the contract it writes by.
CAPTURE_FILES = (
    Path(capture_writer.__file__).resolve(),
    Path(capture_contract.__file__).resolve(),
)
ADAPTER_FILES = (ADAPTER, *CAPTURE_FILES)  # what a model run by the adapter is given
# What the adapter needs beside it to serve a tree model as FIL would.
TREE_FILES = (
    Path(tree_predict.__file__).resolve(),
    Path(xgboost_file.__file__).resolve(),  # tree_predict imports it from its folder
)
# What the adapter needs beside it to serve a TorchScript model as libtorch would.
TORCH_FILES = (
    ADAPTER.parent / "torch_session.py",
    Path(torch_predict.__file__).resolve(),
)
CONFIG_NAME = "config.pbtxt"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 60
SHM = Path("/dev/shm")  # noqa: S108 where Triton puts its shared memory
SHM_PREFIX = "triton_python_backend_shm_region_"


class ServeError(Exception):
    """Why the local Triton could not be prepared, started or kept running."""


class MissingExtra(ServeError):
    """The model's format needs an optional extra this environment lacks (exit 2)."""


@dataclass(frozen=True)
class Endpoints:
    host: str
    http_port: int
    grpc_port: int
    metrics_port: int | None  # None: metrics disabled

    @property
    def http(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics(self) -> str | None:
        if self.metrics_port is None:
            return None
        return f"http://{self.host}:{self.metrics_port}/metrics"


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def ensure_port_free(host: str, port: int, flag: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServeError(
                f"port {port} on {host} is in use ({exc.strerror}); another Triton may be "
                f"running. Choose another with {flag}, or 0 for a free one."
            ) from exc


def choose_endpoints(
    host: str = DEFAULT_HOST,
    http_port: int = 0,
    grpc_port: int = 0,
    metrics_port: int | None = 0,
) -> Endpoints:
    """Ports as asked: 0 picks a free one; a port in use is refused with a clear message."""
    chosen: list[int | None] = []
    for port, flag in (
        (http_port, "--http-port"),
        (grpc_port, "--grpc-port"),
        (metrics_port, "--metrics-port"),
    ):
        if port is None:
            chosen.append(None)
        elif port == 0:
            picked = free_port(host)
            while picked in chosen:
                picked = free_port(host)
            chosen.append(picked)
        else:
            if port in chosen:
                raise ServeError(f"port {port} is asked for twice ({flag})")
            ensure_port_free(host, port, flag)
            chosen.append(port)
    http, grpc, metrics = chosen
    assert http is not None and grpc is not None
    return Endpoints(host, http, grpc, metrics)


def _get(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 local http
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return 0


def _shm_regions(group: int) -> set[str]:
    """Shared-memory regions named on the command lines of a process group's stubs."""
    regions: set[str] = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != group:  # fields after the name: state, ppid, pgrp, ...
                continue
            arguments = (stat_file.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        for argument in arguments:
            name = argument.decode(errors="replace")
            if name.startswith(SHM_PREFIX) and "/" not in name:
                regions.add(name)
    return regions


class TritonServer:
    """One tritonserver process (its own process group) serving a model repository."""

    def __init__(
        self,
        dist: TritonDistribution,
        backend: BackendEnv,
        repository: Path,
        models: Sequence[str],
        endpoints: Endpoints,
        log_path: Path,
        extra_args: Sequence[str] = (),
        project_root: Path | None = None,
    ) -> None:
        self.project_root = project_root  # where a relative capture data store is
        self.dist = dist
        self.backend = backend
        self.repository = repository
        self.models = list(models)
        self.endpoints = endpoints
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_after_s: float | None = None
        self._started = 0.0
        self._shm: set[str] = set()

    def command(self) -> list[str]:
        e = self.endpoints
        command = [
            str(self.dist.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={self.dist.backends}",
            "--model-control-mode=explicit",
            *(f"--load-model={m}" for m in self.models),
            "--disable-auto-complete-config",
            "--pinned-memory-pool-byte-size=0",
            "--exit-timeout-secs=5",
            # The capture step reads a request's x-request-id from its parameters.
            f"--http-header-forward-pattern={capture_contract.REQUEST_ID_HEADER}",
            f"--grpc-header-forward-pattern={capture_contract.REQUEST_ID_HEADER}",
            f"--http-address={e.host}",
            f"--http-port={e.http_port}",
            f"--grpc-address={e.host}",
            f"--grpc-port={e.grpc_port}",
        ]
        if e.metrics_port is None:
            command.append("--allow-metrics=false")
        else:
            command += [
                "--allow-metrics=true",
                "--allow-gpu-metrics=false",
                f"--metrics-address={e.host}",
                f"--metrics-port={e.metrics_port}",
            ]
        return command + self.extra_args

    def start(self) -> None:
        environment = stub_environment(self.backend)
        if self.project_root is not None:
            environment[capture_contract.PROJECT_ROOT_ENV] = str(self.project_root)
        try:
            check_stub(self.dist, environment)
        except BackendEnvError as exc:
            raise ServeError(str(exc)) from exc
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,  # its own process group: stopped as one
            )
        self._started = time.monotonic()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def is_ready(self, timeout: float = 2.0) -> bool:
        base = f"http://{self.endpoints.http}/v2"
        if _get(f"{base}/health/ready", timeout) != 200:
            return False
        return all(_get(f"{base}/models/{m}/ready", timeout) == 200 for m in self.models)

    def wait_ready(self, timeout: float = DEFAULT_READY_TIMEOUT_S) -> float:
        """Seconds from start to ready; ServeError with the server's log otherwise."""
        if self.process is None:
            raise ServeError("the server was not started")
        deadline = self._started + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServeError(
                    f"tritonserver exited with code {code} before it was ready. "
                    f"Its log ({self.log_path}):\n{self.log_tail()}"
                )
            if self.is_ready():
                self.ready_after_s = time.monotonic() - self._started
                self._shm |= _shm_regions(self.process.pid)
                return self.ready_after_s
            if time.monotonic() > deadline:
                self.stop()
                raise ServeError(
                    f"tritonserver was not ready after {timeout:.0f} s and was stopped. "
                    f"Its log ({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Terminate the process group, then kill it if it lingers; return the exit code."""
        process = self.process
        if process is None:
            return None
        self._shm |= _shm_regions(process.pid)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # The python stubs are children in the same group; make sure none is left.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        # A killed server leaves its python stubs' shared-memory regions behind.
        for name in self._shm:
            with contextlib.suppress(OSError):
                (SHM / name).unlink()
        return process.returncode

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# --- the model's repository ----------------------------------------------------------------


def assemble_local(
    model: ServedModel,
    repository: Path,
    config_text: str | None = None,
    signers: dict[int, str] | None = None,
) -> Path:
    """Assemble `<repository>/<model>` with the adapter next to every model.onnx; signed
    versions verified against the environment's trust and this machine's public key."""
    text = model.config_text if config_text is None else config_text
    try:
        trust = model.trust.with_keys(local_key_pair(model.root).public_pem)
        return assemble(
            model.name,
            list(model.artifacts),
            text,
            repository,
            extra_files=adapter_files(text),
            trust=trust,
            signers=signers,
        )
    except (AssembleError, LocalKeyError) as exc:
        raise ServeError(str(exc)) from exc


def _assemble_ensemble(model: ServedModel, repository: Path) -> None:
    """Every step verified as a single model's versions are: digest, and signature
    against the environment's trust and this machine's public key."""
    try:
        trust = model.trust.with_keys(local_key_pair(model.root).public_pem)
        for line in assemble_ensemble(model, repository, ADAPTER_FILES, trust):
            say(f"kiln serve: assembled {model.name} {line}")
    except (AssembleError, LocalKeyError) as exc:
        raise ServeError(str(exc)) from exc


def local_format(config_text: str) -> str | None:
    """The format a local config runs (None where the text is no config: assemble
    refuses it with the parser's message)."""
    try:
        model_format, _ = served_format(read_config(config_text))
    except ConfigError:
        return None
    return model_format


def adapter_files(config_text: str) -> list[Path]:
    """The files each version folder needs besides the artifact: the adapter with its
    capture writer (and its tree or torch helpers), or nothing for a python model, which
    is a python-backend model itself."""
    model_format = local_format(config_text)
    if model_format is None:
        return [ADAPTER]
    if FORMATS[model_format].local == "native":
        return []
    helpers = {"torchscript": TORCH_FILES}.get(model_format, TREE_FILES)
    return [*ADAPTER_FILES] if model_format == "onnx" else [*ADAPTER_FILES, *helpers]


def needs_torch(local: ServedModel) -> bool:
    """Whether the server runs a TorchScript model, so its backend venv needs torch
    (MissingExtra, saying what to install, where Kiln's environment has none)."""
    if local.steps or local_format(local.config_text) != "torchscript":
        return False
    missing = torch_predict.torch_missing()
    if missing is not None:
        raise MissingExtra(f"{local.name} is a TorchScript model. {missing}")
    return True


def prepare_runtime(cache: Path, torch: bool = False) -> tuple[TritonDistribution, BackendEnv]:
    """tritonserver and the backend venv (with torch: the one holding torch), from the
    cache or built once (PlatformError if this machine cannot run them)."""
    try:
        dist = ensure_triton(cache)
        backend = ensure_backend_env(cache, torch)
    except (DistributionError, BackendEnvError) as exc:
        raise ServeError(str(exc)) from exc
    return dist, backend


# --- the command ----------------------------------------------------------------------------


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


@contextlib.contextmanager
def _signals_stop() -> Iterator[None]:
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prepare_server(local: ServedModel, endpoints: Endpoints) -> TritonServer:
    """The server for a local model, not yet started: tritonserver and the backend venv
    ready, the model repository assembled (ServeError or PlatformError if they cannot be)."""
    model = local.name
    if not local.local:
        raise ServeError(
            f"environment {local.environment!r} is a cluster environment (onnxruntime "
            "backend on GPUs); the local Triton has only the python backend and serves "
            "`local`-kind environments"
        )
    torch = needs_torch(local)
    workdir = local.root / ".kiln" / "serve" / model
    repository = workdir / "repository"
    # Verified before anything is fetched or started: a refused model never reaches Triton.
    signers: dict[int, str] = {}
    if local.steps:
        _assemble_ensemble(local, repository)
    else:
        assemble_local(local, repository, signers=signers)
    for artifact in local.artifacts:
        say(
            f"kiln serve: assembled {model} version {artifact.version}: "
            f"{checked(artifact, signers)}"
        )
    cache = default_cache()
    say(f"kiln serve: tritonserver and its backend venv from {cache} (built on first use)")
    dist, backend = prepare_runtime(cache, torch)
    return TritonServer(
        dist,
        backend,
        repository,
        [model],
        endpoints,
        workdir / "triton.log",
        project_root=local.root,
    )


def serve(
    local: ServedModel,
    host: str = DEFAULT_HOST,
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int | None = 8002,
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
) -> int:
    """Run the local Triton in the foreground until Ctrl-C or SIGTERM; the exit code."""
    try:
        endpoints = choose_endpoints(host, http_port, grpc_port, metrics_port)
        server = prepare_server(local, endpoints)
    except MissingExtra as exc:
        say(f"kiln serve: error: {exc}")
        return 2  # this machine lacks an optional extra: nothing about the model is wrong
    except (ServeError, PlatformError) as exc:
        say(f"kiln serve: error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("kiln serve: interrupted")
        return 130
    with _signals_stop():
        try:
            return _run_until_stopped(server, local, ready_timeout)
        finally:
            # Whatever ends the run, an error of Kiln's own included, no Triton is left
            # behind without an owner (stop() does nothing more to a stopped server).
            server.stop()


def _run_until_stopped(server: TritonServer, local: ServedModel, ready_timeout: float) -> int:
    try:
        server.start()
        ready = server.wait_ready(ready_timeout)
    except ServeError as exc:
        say(f"kiln serve: error: {exc}")
        return 1
    except _Stop:
        return 130
    _announce(server, local, ready)
    try:
        while server.running():
            time.sleep(0.5)
    except _Stop as stop:
        say(f"kiln serve: {stop}: stopping Triton (pid {server.pid})")
        code = server.stop()
        say(f"kiln serve: stopped (exit code {code})")
        return 0
    say(
        f"kiln serve: error: tritonserver exited unexpectedly with code "
        f"{server.process.returncode if server.process else '?'}. Its log:\n{server.log_tail()}"
    )
    return 1


def _announce(server: TritonServer, local: ServedModel, ready: float) -> None:
    e = server.endpoints
    model = local.name
    env = "" if local.environment == "local" else f" --env {local.environment}"
    lines = [
        f"kiln serve: Triton 2.51 (python backend, CPU) serving {model} "
        f"(environment {local.environment}), ready in {ready:.1f} s",
        f"  HTTP     http://{e.http}   e.g. curl http://{e.http}/v2/models/{model}",
        f"  gRPC     {e.grpc}",
        f"  metrics  {e.metrics or 'disabled (--no-metrics)'}",
        f"  log      {server.log_path}",
        f"  smoke    kiln smoke {model} --url {e.http}{env}",
        f"  capture  {_capture_line(local)}",
        "Ctrl-C stops it.",
    ]
    say("\n".join(lines))


def _capture_line(local: ServedModel) -> str:
    """Where this server records its traffic (docs/capture.md), as the announcement says it."""
    if local.capture_step is not None:  # an ensemble's capture step holds the settings
        config = read_config(local.capture_step.config_text)
    else:
        config = read_config(local.config_text)  # an ensemble serves no version of its own
    parameter = config.parameters.get(capture_contract.PARAMETER)
    if parameter is None:
        return "off (serving.capture)"
    settings = capture_contract.CaptureConfig.from_json(parameter.string_value)
    root = capture_writer.resolve_root(settings.data, str(local.root)) or settings.data
    where = capture_contract.captured_uri(root, local.name)
    return f"{where} (sample {settings.sample:g}; labels: kiln label {local.name} --from FILE)"
