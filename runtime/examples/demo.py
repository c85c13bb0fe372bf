"""`make demo`: the whole lifecycle of a model on this machine, with real parts.

Compile the example platform, train car-loan-default with the pipeline Argo would
run, serve it with a real Triton server (CPU, python backend), smoke-test it over
HTTP and gRPC, replay NannyML's car-loan analysis period through it (the server
captures what it is asked and answers), stop it, write the labels of the served
rows with `kiln label`, monitor the served traffic with `kiln monitor` and no flags
(realised performance included), and summarise. Each step says what it runs; the
first run downloads Triton's wheel and builds its backend environment (in the user
cache, ~/.cache/kiln, reused afterwards).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = "car-loan-default"
DATA = ROOT / ".kiln" / "data"
MONITOR_OUT = ROOT / ".kiln" / "monitor" / MODEL / "local"  # kiln monitor's default
SERVED = DATA / MODEL  # captured/ and labels/ (docs/capture.md)
REPLAY_BATCH = 64  # the model's max_batch_size
TARGET = "repaid"  # the model's target column (spec.target)
READY_TIMEOUT_S = 600  # the first start downloads Triton and builds its backend venv


class DemoFailed(Exception):
    pass


def step(number: int, total: int, text: str) -> None:
    print(f"\n[{number}/{total}] {text}", flush=True)


def kiln(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "compiler", *args]
    print(f"    $ kiln {' '.join(args)}", flush=True)
    completed = subprocess.run(command, cwd=ROOT, text=True, capture_output=capture)
    if completed.returncode != 0:
        if capture:
            print(completed.stdout + completed.stderr)
        raise DemoFailed(f"`kiln {args[0]}` failed with exit code {completed.returncode}")
    return completed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ensure_models() -> None:
    """The committed example artifacts; Kiln's built-in trainer reproduces them byte for
    byte from the example data (step 3 shows it: the version it publishes has their sha256)."""
    artifact = ROOT / "specs/artifacts/models" / MODEL / "1/model.onnx"
    if not artifact.is_file():
        raise DemoFailed(
            f"{artifact.relative_to(ROOT)} is missing; restore it with "
            "`git checkout -- specs/artifacts`"
        )
    print(f"    {artifact.relative_to(ROOT)} is present (trained by Kiln's built-in trainer)")


def ensure_data() -> None:
    if (DATA / "car-loan/analysis.parquet").is_file():
        print(f"    {DATA.relative_to(ROOT)}/ holds NannyML's example data already")
        return
    subprocess.run(
        [sys.executable, "-m", "runtime.examples.example_data", "--out", str(DATA)],
        cwd=ROOT,
        check=True,
    )


def wait_ready(url: str, server: subprocess.Popen[str]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if server.poll() is not None:
            raise DemoFailed("kiln serve exited before Triton became ready (see its output above)")
        try:
            ready = f"{url}/v2/health/ready"  # the server the demo started, over http
            with urllib.request.urlopen(ready, timeout=1) as answer:  # noqa: S310
                if answer.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    raise DemoFailed(f"Triton was not ready after {READY_TIMEOUT_S} s")


def stop(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def smoke_summary(output: str) -> str:
    lines = [line.strip() for line in output.splitlines()]
    latency = next((line for line in lines if "latency" in line), "")
    verdict = lines[-1] if lines else ""
    return f"{verdict}; {latency}" if latency else verdict


def alerts_summary() -> list[str]:
    results = json.loads((MONITOR_OUT / "results.json").read_text(encoding="utf-8"))
    counts: dict[str, int] = {}
    for event in results.get("alerts", []):
        key = f"{event['name']} ({event['severity']}, {event['signal']})"
        counts[key] = counts.get(key, 0) + 1
    return [f"{name}: {count} event(s)" for name, count in sorted(counts.items())]


TOTAL_STEPS = 10


def compile_examples() -> str:
    step(2, TOTAL_STEPS, "compile the example platform in specs/ into generated/")
    compiled = kiln("compile", capture=True)
    print("    " + compiled.stderr.strip().splitlines()[-1])
    files = sum(1 for p in (ROOT / "generated").rglob("*") if p.is_file())
    return f"generated/: {files} files for local, staging and production"


def train() -> str:
    step(3, TOTAL_STEPS, "train, evaluate, validate and publish with the pipeline Argo would run")
    # A store outside specs/: the demo leaves the checkout as it found it (`kiln run`
    # alone publishes where the local environment serves from, for `kiln promote`).
    trained = kiln("run", MODEL, "--local", "--store", ".kiln/store", capture=True)
    lines = trained.stdout.strip().splitlines()
    for line in lines:
        print(f"    {line}")
    return next(line for line in lines if line.startswith("published "))


def replay(grpc: str) -> tuple[str, Path]:
    """NannyML's analysis period through Triton in batches, each with its x-request-id;
    the ground truth of every row, keyed as the capture keys it, into a CSV for `kiln label`."""
    import pandas as pd
    import tritonclient.grpc as grpcclient
    from ruamel.yaml import YAML

    from runtime.contract.capture import REQUEST_ID, REQUEST_ID_HEADER, row_request_id
    from runtime.contract.signature import parse_signature
    from runtime.serving.sample_data import to_inputs

    # The signature as compiled: runtime code reads what the compiler wrote, never specs.
    configmap = ROOT / "generated/staging" / MODEL / f"configmap-{MODEL}-triton-config.yaml"
    document = YAML(typ="safe").load(configmap.read_text(encoding="utf-8"))
    signature = parse_signature(document["data"]["signature.json"])
    frame = pd.read_parquet(DATA / "car-loan/analysis.parquet")
    names = [t.name for t in signature.inputs]
    frame = frame.dropna(subset=names).reset_index(drop=True)
    arrays = to_inputs(frame, signature.inputs)
    types = {"fp32": "FP32", "int64": "INT64", "string": "BYTES"}
    client = grpcclient.InferenceServerClient(grpc)
    keys: list[str] = []
    started = time.monotonic()
    try:
        for batch, first in enumerate(range(0, len(frame), REPLAY_BATCH)):
            last = min(first + REPLAY_BATCH, len(frame))
            entries = []
            for tensor in signature.inputs:
                value = arrays[tensor.name][first:last]
                entry = grpcclient.InferInput(tensor.name, list(value.shape), types[tensor.dtype])
                entry.set_data_from_numpy(value)
                entries.append(entry)
            request_id = f"demo-{batch}"
            client.infer(MODEL, entries, headers={REQUEST_ID_HEADER: request_id})
            keys += [row_request_id(request_id, r, last - first) for r in range(last - first)]
    finally:
        client.close()
    seconds = time.monotonic() - started
    truth = ROOT / ".kiln" / "demo" / "labels.csv"
    truth.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({REQUEST_ID: keys, TARGET: frame[TARGET]}).to_csv(truth, index=False)
    requests = -(-len(frame) // REPLAY_BATCH)
    said = (
        f"replayed {len(frame)} rows in {requests} requests of up to {REPLAY_BATCH} "
        f"in {seconds:.1f} s"
    )
    return said, truth


def serve_and_replay() -> tuple[list[str], Path]:
    """Start `kiln serve`, smoke-test it over both protocols, replay the analysis period
    through it, stop it (the capture flushes); the verdicts and the labels file."""
    step(4, TOTAL_STEPS, "serve it with a real Triton server (CPU, python backend, capture on)")
    shutil.rmtree(SERVED, ignore_errors=True)  # this run's traffic only
    http, grpc, metrics = free_port(), free_port(), free_port()
    ports = ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    command = [sys.executable, "-m", "compiler", "serve", MODEL, *ports]
    server = subprocess.Popen(command, cwd=ROOT, text=True)
    verdicts = []
    try:
        ready = wait_ready(f"http://127.0.0.1:{http}", server)
        print(f"    ready after {ready:.1f} s at http://127.0.0.1:{http} and grpc 127.0.0.1:{grpc}")
        step(5, TOTAL_STEPS, "smoke-test over HTTP and gRPC against onnxruntime in-process")
        for protocol, url in (("http", f"127.0.0.1:{http}"), ("grpc", f"127.0.0.1:{grpc}")):
            smoke = kiln("smoke", MODEL, "--url", url, "--protocol", protocol, capture=True)
            print("    " + "\n    ".join(smoke.stdout.strip().splitlines()))
            verdicts.append(f"smoke over {protocol}: {smoke_summary(smoke.stdout)}")
        step(6, TOTAL_STEPS, "replay NannyML's car-loan analysis period through Triton (gRPC)")
        replayed, truth = replay(f"127.0.0.1:{grpc}")
        print(f"    {replayed}")
        verdicts.append(replayed)
    finally:
        step(7, TOTAL_STEPS, "stop the server (SIGTERM: the capture writes what it holds)")
        stop(server)
        print(f"    stopped (exit code {server.returncode})")
    parts = sorted((SERVED / "captured").rglob("*.parquet"))
    print(f"    {len(parts)} captured part(s) under {(SERVED / 'captured').relative_to(ROOT)}/")
    return verdicts, truth


def monitor(truth: Path) -> list[str]:
    step(8, TOTAL_STEPS, "write the served rows' labels (the outcomes, known later)")
    kiln("label", MODEL, "--from", str(truth))
    step(9, TOTAL_STEPS, "monitor the served traffic with NannyML (no flags: the captured data)")
    kiln("monitor", MODEL, "--no-deliver")
    results = json.loads((MONITOR_OUT / "results.json").read_text(encoding="utf-8"))
    realised = [c for c in results["calculators"] if c["name"] == "realized_performance"]
    alerts = alerts_summary()
    return [
        f"monitored {results['data']['analysis']['rows']} served rows; realised "
        f"performance: {realised[0]['status'] if realised else 'not run'}",
        "alerts raised (delivery skipped locally): " + ("; ".join(alerts) or "none"),
        f"monitoring report: {(MONITOR_OUT / 'report.html').relative_to(ROOT)}",
    ]


def main() -> int:
    print("Kiln demo: the lifecycle of car-loan-default on this machine, with real parts")
    try:
        step(1, TOTAL_STEPS, "example models and data (NannyML's synthetic car-loan data set)")
        ensure_models()
        ensure_data()
        compiled, trained = compile_examples(), train()
        verdicts, truth = serve_and_replay()
        summary = [compiled, trained, *verdicts, *monitor(truth)]
    except (DemoFailed, subprocess.CalledProcessError, OSError) as exc:
        print(f"\ndemo stopped: {exc}")
        return 1
    step(10, TOTAL_STEPS, "summary")
    for line in summary:
        print(f"    - {line}")
    print(
        "\nNext: edit a spec, then `.venv/bin/kiln validate` and `.venv/bin/kiln plan --base HEAD`."
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    raise SystemExit(main())
