"""`kiln smoke`: check a running Triton against the model's spec, and measure it briefly.

Checks, in order, for every served version:

1. the server is live and ready and the model version is ready;
2. the model metadata Triton reports equals the spec's signature: every input
   and output by name, datatype and shape (Triton reports the batch dimension
   as -1 when max_batch_size > 0, and a batch-only tensor `[-1]` as `[-1, 1]`,
   the dims of its config entry);
3. inference on sample rows equals the model's own library in process on the same
   model file (runtime/serving/references.py): onnxruntime for ONNX, exactly (one
   intra-op thread on both sides); xgboost or lightgbm for a tree model, exactly
   where the local adapter serves it, within FIL's float32 tolerance in a cluster;
4. a short latency summary over single-row requests; with a ceiling
   (`--max-latency-p99-ms`, which the rollout's analysis Job passes), a p99 above
   it fails. Here the traffic is known: the requests are the Job's own, so the
   check cannot be fooled by an idle window as a metric in Prometheus can.

Every mismatch is a failed check whose message names the tensor; any failure
exits 1. Calls have timeouts, so a dead or hung server is reported, not waited
on forever.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from runtime.contract import triton_config
from runtime.contract.arrays import NUMPY_TYPES
from runtime.contract.formats import FORMATS
from runtime.contract.served import ArtifactSource, ServedStep
from runtime.contract.signature import (
    PROTOCOL_DATATYPES,
    Signature,
    SignatureError,
    Tensor,
    parse_signature,
)
from runtime.contract.tree_predict import LIBRARIES
from runtime.contract.triton_config import ConfigError, read_config
from runtime.serving.assemble import AssembleError, fetch
from runtime.serving.flags import FlagError, keyed, versioned
from runtime.serving.references import (
    MissingLibrary,
    OnnxReference,
    Reference,
    Tolerance,
    onnx_session,
    reference_for,
)
from runtime.serving.sample_data import SampleDataError, load_sample, take

DEFAULT_TIMEOUT_S = 10.0


class SmokeFailure(Exception):
    """A call to the server failed; the message says which call and why."""


def triton_shape(tensor: Tensor, batched: bool) -> list[int]:
    """The shape Triton's metadata reports for a tensor of the spec."""
    if not batched:
        return list(tensor.shape)
    return [-1, *(tensor.shape[1:] or (1,))]


# --- clients --------------------------------------------------------------------------------


class Client(Protocol):
    url: str
    protocol: str

    def live(self) -> bool: ...
    def ready(self) -> bool: ...
    def model_ready(self, model: str, version: str) -> bool: ...
    def metadata(self, model: str, version: str) -> dict[str, Any]: ...
    def infer(
        self, model: str, version: str, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray | None]: ...
    def close(self) -> None: ...


def _datatype(array: np.ndarray) -> str:
    if array.dtype == object:
        return "BYTES"
    for kiln, triton in PROTOCOL_DATATYPES.items():
        if kiln != "string" and np.dtype(NUMPY_TYPES[kiln]) == array.dtype:
            return triton
    raise SmokeFailure(f"no Triton datatype for numpy {array.dtype}")


class HttpClient:
    protocol = "http"

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        import tritonclient.http as httpclient

        self.module = httpclient
        self.url = url
        self.client = httpclient.InferenceServerClient(
            url, connection_timeout=timeout, network_timeout=timeout
        )

    def live(self) -> bool:
        return bool(self.client.is_server_live())

    def ready(self) -> bool:
        return bool(self.client.is_server_ready())

    def model_ready(self, model: str, version: str) -> bool:
        return bool(self.client.is_model_ready(model, version))

    def metadata(self, model: str, version: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.get_model_metadata(model, version)
        return result

    def infer(
        self, model: str, version: str, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray | None]:
        inputs = []
        for name, array in arrays.items():
            tensor = self.module.InferInput(name, list(array.shape), _datatype(array))
            tensor.set_data_from_numpy(array, binary_data=True)
            inputs.append(tensor)
        wanted = [self.module.InferRequestedOutput(n, binary_data=True) for n in outputs]
        result = self.client.infer(model, inputs, model_version=version, outputs=wanted)
        return {n: result.as_numpy(n) for n in outputs}

    def close(self) -> None:
        self.client.close()


class GrpcClient:
    protocol = "grpc"

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        import tritonclient.grpc as grpcclient

        self.module = grpcclient
        self.url = url
        self.timeout = timeout
        self.client = grpcclient.InferenceServerClient(url)

    def live(self) -> bool:
        return bool(self.client.is_server_live(client_timeout=self.timeout))

    def ready(self) -> bool:
        return bool(self.client.is_server_ready(client_timeout=self.timeout))

    def model_ready(self, model: str, version: str) -> bool:
        return bool(self.client.is_model_ready(model, version, client_timeout=self.timeout))

    def metadata(self, model: str, version: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.get_model_metadata(
            model, version, as_json=True, client_timeout=self.timeout
        )
        return result

    def infer(
        self, model: str, version: str, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray | None]:
        inputs = []
        for name, array in arrays.items():
            tensor = self.module.InferInput(name, list(array.shape), _datatype(array))
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        wanted = [self.module.InferRequestedOutput(n) for n in outputs]
        result = self.client.infer(
            model, inputs, model_version=version, outputs=wanted, client_timeout=self.timeout
        )
        return {n: result.as_numpy(n) for n in outputs}

    def close(self) -> None:
        self.client.close()


def connect(url: str, protocol: str = "http", timeout: float = DEFAULT_TIMEOUT_S) -> Client:
    """A client for `host:port` (a leading http:// or grpc:// is dropped)."""
    address = url.split("://", 1)[-1].rstrip("/")
    if protocol == "http":
        return HttpClient(address, timeout)
    if protocol == "grpc":
        return GrpcClient(address, timeout)
    raise ValueError(f"protocol must be http or grpc, not {protocol!r}")


def _call(what: str, client: Client, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except Exception as exc:  # the client libraries raise many kinds; all mean "failed"
        detail = str(exc).strip() or type(exc).__name__
        raise SmokeFailure(f"{what} ({client.protocol} {client.url}): {detail}") from exc


# --- comparisons ----------------------------------------------------------------------------


def _shape(value: Any) -> list[int]:
    return [int(d) for d in value]  # gRPC's JSON gives int64 dims as strings


def compare_metadata(signature: Signature, metadata: Mapping[str, Any]) -> list[str]:
    """Every difference between the served metadata and the spec, naming the tensor."""
    problems = []
    for kind, tensors in (("input", signature.inputs), ("output", signature.outputs)):
        served = {t["name"]: t for t in metadata.get(f"{kind}s", [])}
        for tensor in tensors:
            entry = served.pop(tensor.name, None)
            if entry is None:
                known = ", ".join(sorted(t["name"] for t in metadata.get(f"{kind}s", [])))
                problems.append(
                    f"{kind} `{tensor.name}` of the spec is not served (the server has: {known})"
                )
                continue
            want_type = PROTOCOL_DATATYPES[tensor.dtype]
            if entry["datatype"] != want_type:
                problems.append(
                    f"{kind} `{tensor.name}`: the server has datatype {entry['datatype']}, "
                    f"the spec declares {tensor.dtype} ({want_type})"
                )
            want_shape = triton_shape(tensor, signature.batched)
            if _shape(entry["shape"]) != want_shape:
                problems.append(
                    f"{kind} `{tensor.name}`: the server has shape {_shape(entry['shape'])}, "
                    f"the spec declares {list(tensor.shape)} (expected {want_shape} from Triton)"
                )
        for name in sorted(served):
            problems.append(f"{kind} `{name}` is served but not in the spec")
    return problems


def _equal(got: np.ndarray, want: np.ndarray, tolerance: Tolerance | None) -> np.ndarray:
    """Element by element: exactly (NaN equals NaN), or within the tolerance for floats."""
    if got.dtype.kind != "f":
        return np.asarray(got == want)
    both_nan = np.isnan(got) & np.isnan(want)
    if tolerance is None:
        return np.asarray((got == want) | both_nan)
    gap = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return np.asarray((gap <= tolerance.bound(want)) | both_nan)


def compare_outputs(
    outputs: Sequence[Tensor],
    served: Mapping[str, np.ndarray | None],
    reference: Mapping[str, np.ndarray],
    batched: bool = True,
    library: str = "onnxruntime",
    tolerance: Tolerance | None = None,
) -> list[str]:
    """Served outputs against the library's, exactly or within `tolerance`; each
    difference names the output."""
    problems = []
    for tensor in outputs:
        got = served.get(tensor.name)
        want = reference[tensor.name]
        if got is None:
            problems.append(f"output `{tensor.name}`: missing from the response")
            continue
        expected_dtype = np.dtype(NUMPY_TYPES[tensor.dtype])
        if got.dtype != expected_dtype and not (tensor.dtype == "string" and got.dtype == object):
            problems.append(
                f"output `{tensor.name}`: the server returned {got.dtype}, the spec declares "
                f"{tensor.dtype}"
            )
            continue
        # Triton exposes the config's dims: a batch-only output [n] arrives as [n, 1].
        rows = want.shape[0] if want.ndim else 1
        shape = [rows if d == -1 else d for d in triton_shape(tensor, batched)]
        if list(got.shape) != shape or got.size != want.size:
            problems.append(
                f"output `{tensor.name}`: the server returned shape {list(got.shape)}, "
                f"expected {shape} ({library}: {list(want.shape)})"
            )
            continue
        want = want.reshape(got.shape)
        if tensor.dtype == "string":
            want = np.array([str(v).encode() for v in want.ravel()], dtype=object)
            equal = np.array([a == b for a, b in zip(got.ravel(), want, strict=True)])
        else:
            equal = _equal(got, want, tolerance)
        if not equal.all():
            flat = np.flatnonzero(~equal.ravel())
            row = int(np.unravel_index(flat[0], got.shape)[0]) if got.ndim else 0
            detail = ""
            if got.dtype.kind in "fiu":
                diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
                detail = f", max abs difference {float(np.nanmax(diff)):.3g}"
            problems.append(
                f"output `{tensor.name}` differs from {library} in {len(flat)} of {got.size} "
                f"values (first at row {row}: served {got.ravel()[flat[0]]!s}, {library} "
                f"{want.ravel()[flat[0]]!s}{detail})"
            )
    return problems


# --- the run --------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class SmokeReport:
    checks: list[Check] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, problems: Sequence[str], detail: str) -> bool:
        if problems:
            self.checks.extend(Check(name, False, p) for p in problems)
            return False
        self.checks.append(Check(name, True, detail))
        return True

    def render(self) -> str:
        return "\n".join(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.checks)


reference_session = onnx_session


def run_reference(
    session: ort.InferenceSession, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
) -> dict[str, np.ndarray]:
    return OnnxReference(session).run(arrays, outputs)


def _as_reference(reference: Reference | ort.InferenceSession) -> Reference:
    return OnnxReference(reference) if isinstance(reference, ort.InferenceSession) else reference


def _join(parts: Sequence[np.ndarray | None]) -> np.ndarray | None:
    present = [p for p in parts if p is not None]
    if not present or len(present) != len(parts):
        return None
    return np.concatenate(present)


def _batches(signature: Signature, rows: int) -> list[tuple[int, int]]:
    size = signature.max_batch_size if signature.batched else rows
    return [(start, min(start + size, rows)) for start in range(0, rows, size)]


def _wait_ready(client: Client, signature: Signature, versions: Sequence[int], wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            live = _call("server liveness", client, client.live)
            ready = live and _call("server readiness", client, client.ready)
            models = ready and all(
                _call(
                    f"readiness of {signature.model} version {v}",
                    client,
                    partial(client.model_ready, signature.model, str(v)),
                )
                for v in versions
            )
            if models:
                return
            state = "not live" if not live else "not ready" if not ready else "model not ready"
            failure = SmokeFailure(f"server at {client.url} is {state}")
        except SmokeFailure as exc:
            failure = exc
        if time.monotonic() >= deadline:
            raise failure
        time.sleep(0.25)


def smoke(
    client: Client,
    signature: Signature,
    references: Mapping[int, Reference | ort.InferenceSession],
    arrays: Mapping[str, np.ndarray],
    latency_requests: int = 100,
    wait: float = 0.0,
    max_latency_p99_ms: float | None = None,
) -> SmokeReport:
    """Run every check against one server; never raises for a server-side problem."""
    report = SmokeReport()
    versions = sorted(references)
    try:
        _wait_ready(client, signature, versions, wait)
    except SmokeFailure as exc:
        report.add("readiness", [str(exc)], "")
        return report
    report.add("readiness", [], f"server live and ready, version(s) {versions} ready")
    try:
        for version in versions:
            reference = _as_reference(references[version])
            _check_version(client, signature, version, reference, arrays, report)
        report.latency_ms = measure_latency(
            client, signature, versions[-1], arrays, latency_requests
        )
    except SmokeFailure as exc:
        report.add("server", [str(exc)], "")
        return report
    if report.latency_ms:
        report.add(
            "latency",
            latency_problems(report.latency_ms, max_latency_p99_ms),
            latency_summary(report.latency_ms, client.protocol, max_latency_p99_ms),
        )
    elif max_latency_p99_ms is not None:
        report.add("latency", ["a latency ceiling is set, but no latency requests were sent"], "")
    return report


def latency_summary(latency: Mapping[str, float], protocol: str, ceiling: float | None) -> str:
    within = "" if ceiling is None else f", within the ceiling of {ceiling:g} ms"
    return (
        f"{int(latency['requests'])} single-row requests ({protocol}): "
        f"p50 {latency['p50']:.2f} ms, p99 {latency['p99']:.2f} ms, "
        f"mean {latency['mean']:.2f} ms{within}"
    )


def latency_problems(latency: Mapping[str, float], ceiling: float | None) -> list[str]:
    """The p99 over the ceiling, if it is; client-side, so it includes the network."""
    if ceiling is None or latency["p99"] <= ceiling:
        return []
    return [
        f"p99 {latency['p99']:.2f} ms over {int(latency['requests'])} single-row requests "
        f"is above the ceiling of {ceiling:g} ms (p50 {latency['p50']:.2f} ms)"
    ]


def _check_version(
    client: Client,
    signature: Signature,
    version: int,
    reference: Reference,
    arrays: Mapping[str, np.ndarray],
    report: SmokeReport,
) -> None:
    """One served version: its metadata against the signature, then its outputs against
    the library's on the same batches (SmokeFailure when a call fails)."""
    metadata = _call(
        f"metadata of {signature.model} version {version}",
        client,
        partial(client.metadata, signature.model, str(version)),
    )
    report.add(
        f"signature v{version}",
        compare_metadata(signature, metadata),
        f"{len(signature.inputs)} inputs, {len(signature.outputs)} outputs match the spec",
    )
    names = [t.name for t in signature.outputs]
    rows = len(next(iter(arrays.values())))
    served: dict[str, list[np.ndarray | None]] = {n: [] for n in names}
    expected: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start, stop in _batches(signature, rows):
        part = take(arrays, start, stop)
        result = _call(
            f"inference on rows {start}-{stop - 1} (version {version})",
            client,
            partial(client.infer, signature.model, str(version), part, names),
        )
        # The reference sees the same batches as the server.
        reference_part = reference.run(part, names)
        for name in names:
            served[name].append(result.get(name))
            if name in reference_part:
                expected[name].append(reference_part[name])
    joined = {n: _join(p) for n, p in served.items()}
    batches = f"{rows} rows in batches of <= {max(signature.max_batch_size, 1)}"
    _report_inference(report, signature, version, reference, joined, expected, batches)


def _report_inference(
    report: SmokeReport,
    signature: Signature,
    version: int,
    reference: Reference,
    joined: Mapping[str, np.ndarray | None],
    expected: Mapping[str, list[np.ndarray]],
    batches: str,
) -> None:
    names = ", ".join(t.name for t in signature.outputs)
    library, tolerance = reference.library, reference.tolerance
    if not any(expected.values()):
        # No other code computes the answers (a python model): each answer is compared
        # with itself, which leaves its dtype and shape against the signature.
        itself = {n: v for n, v in joined.items() if v is not None}
        report.add(
            f"inference v{version}",
            compare_outputs(signature.outputs, joined, itself, signature.batched, library),
            f"{batches}: {names} have the declared dtypes and shapes "
            f"(values not compared: the model is {library})",
        )
        return
    wanted = {n: np.concatenate(p) for n, p in expected.items()}
    report.add(
        f"inference v{version}",
        compare_outputs(signature.outputs, joined, wanted, signature.batched, library, tolerance),
        f"{batches}: {names} {_equal_verb(signature)} the in-process reference ({library}), "
        f"{tolerance or 'exactly'}",
    )


def _equal_verb(signature: Signature) -> str:
    return "equals" if len(signature.outputs) == 1 else "equal"


def measure_latency(
    client: Client,
    signature: Signature,
    version: int,
    arrays: Mapping[str, np.ndarray],
    requests: int,
) -> dict[str, float]:
    if requests <= 0:
        return {}
    names = [t.name for t in signature.outputs]
    rows = len(next(iter(arrays.values())))
    timings = []
    for i in range(requests):
        part = take(arrays, i % rows, i % rows + 1)
        started = time.perf_counter()
        _call(
            f"latency request {i + 1}/{requests}",
            client,
            partial(client.infer, signature.model, str(version), part, names),
        )
        timings.append((time.perf_counter() - started) * 1000.0)
    values = np.array(timings)
    return {
        "requests": float(requests),
        "p50": float(np.percentile(values, 50)),
        "p99": float(np.percentile(values, 99)),
        "mean": float(values.mean()),
    }


def reference_sessions(artifacts: Sequence[ArtifactSource]) -> dict[int, ort.InferenceSession]:
    """onnxruntime sessions on the served artifacts (see `reference_models`)."""
    found = reference_models(artifacts)
    return {v: r.session for v, r in found.items() if isinstance(r, OnnxReference)}


def reference_models(
    artifacts: Sequence[ArtifactSource],
    model_format: str = "onnx",
    parameters: Mapping[str, str] | None = None,
    exact: bool = True,
    signature: Signature | None = None,
) -> dict[int, Reference]:
    """In-process references on the served artifacts: fetched and verified where a
    digest is given (local files too), opened in place where a local file has none."""
    found: dict[int, Reference] = {}
    settings = dict(parameters or {})
    for artifact in artifacts:
        try:
            if "://" not in artifact.uri and artifact.sha256 is None:
                path = Path(artifact.uri)
                if not path.is_file():
                    raise SmokeFailure(f"artifact of version {artifact.version} not found: {path}")
                found[artifact.version] = reference_for(
                    model_format, path, settings, exact, signature
                )
                continue
            with tempfile.TemporaryDirectory(prefix="kiln-smoke-") as folder:
                # The file's own name: xgboost tells JSON from UBJ by the suffix.
                target = Path(folder) / Path(artifact.uri.rstrip("/")).name
                fetch(artifact.uri, target, artifact.sha256)
                found[artifact.version] = reference_for(
                    model_format, target, settings, exact, signature
                )
        except (AssembleError, ValueError) as exc:
            raise SmokeFailure(f"version {artifact.version}: {exc}") from exc
    return found


def run(
    signature: Signature,
    artifacts: Sequence[ArtifactSource],
    url: str,
    protocol: str = "http",
    environment: str | None = "local",
    data: str | None = None,
    rows: int = 256,
    latency_requests: int = 100,
    timeout: float = DEFAULT_TIMEOUT_S,
    wait: float = 0.0,
    out: Callable[[str], None] = print,
    max_latency_p99_ms: float | None = None,
    model_format: str = "onnx",
    parameters: Mapping[str, str] | None = None,
    exact: bool = True,
    references: Mapping[int, Reference] | None = None,
) -> int:
    """`kiln smoke`: the exit code (0 all checks pass, 1 any failure, 2 the format's
    optional library is not installed here). `exact`: the
    server runs the same library (the local adapter); else a format's tolerance holds.
    `references` replaces the artifacts' own (an ensemble's pipeline computed in process)."""
    try:
        if references is None:
            references = reference_models(artifacts, model_format, parameters, exact, signature)
        first = references[min(references)]
        source, frame = load_sample(first.columns(signature), data)
        arrays = first.inputs(frame, signature, rows)
    except MissingLibrary as exc:
        out(f"FAIL setup: {exc}")
        return 2  # not the server's fault: this machine lacks an optional extra
    except (SampleDataError, SmokeFailure, OSError, ValueError) as exc:
        out(f"FAIL setup: {exc}")
        return 1
    where = f" ({environment})" if environment else ""
    out(
        f"smoke: {signature.model}{where} at {protocol} {url}; "
        f"{len(arrays[signature.inputs[0].name])} rows from {source}"
    )
    client = connect(url, protocol, timeout)
    try:
        report = smoke(
            client, signature, references, arrays, latency_requests, wait, max_latency_p99_ms
        )
    finally:
        client.close()
    out(report.render())
    out("smoke: passed" if report.ok else "smoke: FAILED")
    return 0 if report.ok else 1


# --- the cluster entry point: `python -m runtime.serving.smoke` in a rollout analysis Job ---


@dataclass(frozen=True)
class ServedFormat:
    """What a config.pbtxt says of the model's format, for the in-process reference."""

    format: str = "onnx"
    parameters: dict[str, str] = field(default_factory=dict)
    exact: bool = True  # the server runs the very library (the local adapter)


def served_format(path: Path) -> ServedFormat:
    """The format of a compiled config: the local adapter's names it (`kiln_format`);
    a cluster's FIL config gives its library by `model_type`."""
    try:
        config = read_config(path.read_text(encoding="utf-8"))
    except ConfigError as exc:
        raise SmokeFailure(f"{path} is not a Triton config: {exc}") from exc
    parameters = triton_config.parameters(config)
    if config.backend == FORMATS["xgboost"].backend:
        library = LIBRARIES.get(parameters.get("model_type", ""))
        if library is None:
            raise SmokeFailure(f"{path}: FIL model_type has no library to compare with")
        return ServedFormat(library, parameters, exact=False)
    if config.platform == FORMATS["torchscript"].platform:
        return ServedFormat("torchscript", parameters, exact=False)
    model_format, _ = triton_config.served_format(config)
    return ServedFormat(model_format, parameters)


def _pairs(values: Sequence[str], flag: str) -> dict[int, str]:
    try:
        return versioned(values, flag)
    except FlagError as exc:
        raise SmokeFailure(str(exc)) from exc


def _step_pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    try:
        return keyed(values, flag)
    except FlagError as exc:
        raise SmokeFailure(str(exc)) from exc


def ensemble_references(
    config: Path, steps: Sequence[str], artifacts: Sequence[str], digests: Sequence[str]
) -> dict[int, Reference]:
    """An ensemble's reference, as `kiln smoke` computes it: its steps in process, each
    step's artifact fetched with its digest checked (`--step STEP=CONFIG`,
    `--step-artifact STEP=URI`, `--step-sha256 STEP=HEX`); keyed by the ensemble's version."""
    from runtime.serving.ensemble_reference import ReferenceError, ensemble_reference

    try:
        text = config.read_text(encoding="utf-8")
        ensemble = triton_config.read_config(text)
    except (OSError, triton_config.ConfigError) as exc:
        raise SmokeFailure(f"{config} is not an ensemble config: {exc}") from exc
    versions = list(ensemble.version_policy.specific.versions)
    configs = _step_pairs(steps, "--step")
    uris = _step_pairs(artifacts, "--step-artifact")
    sha256 = _step_pairs(digests, "--step-sha256")
    if len(versions) != 1 or set(uris) != set(configs):
        raise SmokeFailure("give the ensemble's one version and every step's --step-artifact")
    served = []
    for name, path in sorted(configs.items()):
        source = ArtifactSource(versions[0], uris[name], sha256.get(name))
        served.append(ServedStep(name, Path(path).read_text(encoding="utf-8"), source))
    try:
        return {versions[0]: ensemble_reference(text, served)}
    except ReferenceError as exc:
        raise SmokeFailure(str(exc)) from exc


def _positive(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Smoke-test a Triton endpoint against a signature file and the served artifacts."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m runtime.serving.smoke", description=main.__doc__
    )
    parser.add_argument("--url", required=True, help="Triton endpoint, e.g. http://host:8000.")
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http")
    parser.add_argument("--signature", required=True, type=Path, help="signature.json")
    parser.add_argument("--artifact", action="append", default=[], help="VERSION=URI")
    parser.add_argument("--sha256", action="append", default=[], help="VERSION=HEX")
    for flag, meta in (("--step", "CONFIG"), ("--step-artifact", "URI"), ("--step-sha256", "HEX")):
        parser.add_argument(
            flag, action="append", default=[], help=f"An ensemble step's STEP={meta}."
        )
    parser.add_argument("--data", default=None, help="Sample rows (parquet or CSV).")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="The served config.pbtxt: its format and FIL parameters (ONNX without it).",
    )
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--latency-requests", type=int, default=100)
    parser.add_argument("--wait", type=float, default=60.0, help="Seconds to wait for ready.")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    parser.add_argument(
        "--max-latency-p99-ms",
        type=_positive,
        default=None,
        help="Fail when the p99 of the latency requests is above this.",
    )
    args = parser.parse_args(argv)
    try:
        signature = parse_signature(args.signature.read_text(encoding="utf-8"))
        artifacts = _pairs(args.artifact, "--artifact")
        digests = _pairs(args.sha256, "--sha256")
        served = ServedFormat() if args.config is None else served_format(args.config)
        references = None
        if args.step:  # an ensemble: its config is --config
            config = args.config or Path("config.pbtxt")
            references = ensemble_references(
                config, args.step, args.step_artifact, args.step_sha256
            )
    except (SmokeFailure, SignatureError, OSError) as exc:
        print(f"FAIL setup: {exc}")
        return 1
    if not artifacts and references is None:
        print("FAIL setup: give the served artifact(s) with --artifact VERSION=URI")
        return 1
    sources = [ArtifactSource(v, uri, digests.get(v)) for v, uri in sorted(artifacts.items())]
    return run(
        signature,
        sources,
        args.url,
        args.protocol,
        environment=None,
        data=args.data,
        rows=args.rows,
        latency_requests=args.latency_requests,
        timeout=args.timeout,
        wait=args.wait,
        max_latency_p99_ms=args.max_latency_p99_ms,
        model_format=served.format,
        parameters=served.parameters,
        exact=served.exact,
        references=references,
    )


if __name__ == "__main__":
    raise SystemExit(main())
