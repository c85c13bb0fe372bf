"""The rollout analysis, judged through the phases of a rollout on a real Triton.

A real Triton and a real Prometheus scraping it as the canary Service
(tests/integration/conftest.py). The queries and conditions are the ones Kiln
compiled into `staging/car-loan-default`'s AnalysisTemplate, read from the build,
not retyped; tests/argo_analysis.py applies Argo Rollouts' semantics to them.

The phases, in order:

1. loaded and idle: Triton has run its warm-up requests, nothing else;
2. a smoke burst: `runtime.serving.smoke` itself, as the analysis Job runs it;
3. idle for longer than Triton's 60 s summary window and the query window;
4. steady, paced traffic;
5. a latency spike: the model's backend processes are stopped for a moment, again
   and again, while requests arrive;
6. an error burst: requests the model fails (counted by Triton as failures).

In each phase every Prometheus metric is measured `count` times in a row (the
template's `interval` is compressed to half a second: Prometheus scrapes every
second and the windows are 60 s) and the measurements are fed to the model of
assessMetricStatus with the template's limits. The table of decisions is printed
(`pytest -s` shows it).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from compiler.api import build
from compiler.served import served_model
from compiler.targets.quality import READERS
from runtime.contract.served import ServedModel
from runtime.local.serve import TritonServer
from runtime.serving.sample_data import load_sample, take, to_inputs
from runtime.serving.smoke import connect, reference_sessions, smoke
from tests.argo_analysis import Phase, decide, initial_delay_s, measure, vector_result, worst
from tests.integration.conftest import MODEL, NAMESPACE, ROOT, first_value, instant

pytestmark = pytest.mark.slow

SCRAPE_S = 1.0  # the harness Prometheus's scrape interval
SUMMARY_WINDOW_S = 60.0  # Triton's latency summaries forget observations after 60 s
MEASURE_GAP_S = 0.5
S, F, N, P = Phase.SUCCESSFUL, Phase.FAILED, Phase.INCONCLUSIVE, Phase.PENDING


def _template() -> dict[str, Any]:
    result = build(ROOT / "specs")
    assert result.ok
    for artifact in result.artifacts:
        document = artifact.document
        if (
            document is not None
            and artifact.path.startswith(f"staging/{MODEL}/")
            and document["kind"] == "AnalysisTemplate"
        ):
            assert document["metadata"]["namespace"] == NAMESPACE
            return document
    raise AssertionError(f"no AnalysisTemplate for staging/{MODEL}")


@dataclass
class Measured:
    """One metric in one phase: the raw values, the measurements, the decision."""

    values: list[list[float]] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    decision: Phase = Phase.RUNNING


def _window_s(metrics: list[dict[str, Any]]) -> float:
    query = metrics[0]["provider"]["prometheus"]["query"]
    return float(query.split("[", 1)[1].split("s]", 1)[0])


class Harness:
    def __init__(self, triton: TritonServer, prometheus: str) -> None:
        self.triton, self.prometheus = triton, prometheus
        # Triton's operational metrics; the quality gate's readers query what its Job pushes
        # (tests/integration/test_rollout_quality.py runs them).
        self.metrics = [
            m
            for m in _template()["spec"]["metrics"]
            if "prometheus" in m["provider"] and m["name"] not in READERS
        ]
        self.window_s = _window_s(self.metrics)
        self.local: ServedModel = served_model(ROOT / "specs", MODEL, "local", ROOT / "generated")
        names = [t.name for t in self.local.signature.inputs]
        self.arrays = to_inputs(load_sample(names)[1], self.local.signature.inputs, 64)
        self.outputs = [t.name for t in self.local.signature.outputs]
        self.table: dict[str, dict[str, Measured]] = {}
        self.raw_p99: dict[str, float] = {}  # Triton's p99, ungated, after each phase
        # The analysis starts now, as a pre-promotion analysis starts once the preview is
        # ready: initialDelay counts from here.
        self.started = time.monotonic()

    def measure(self, phase: str) -> dict[str, Measured]:
        """Settle one scrape, then measure every metric `count` times, as the controller
        would every `interval`."""
        time.sleep(3 * SCRAPE_S)
        found = {m["name"]: Measured() for m in self.metrics}
        rounds = max(int(m["count"]) for m in self.metrics)
        for _ in range(rounds):
            elapsed = time.monotonic() - self.started
            for metric in self.metrics:
                if elapsed < initial_delay_s(metric):
                    continue  # Argo Rollouts has not measured it yet
                query = metric["provider"]["prometheus"]["query"]
                result = vector_result(instant(self.prometheus, query))
                entry = found[metric["name"]]
                entry.values.append(result)
                entry.phases.append(
                    measure(result, metric["successCondition"], metric["failureCondition"])
                )
            time.sleep(MEASURE_GAP_S)
        for metric in self.metrics:
            entry = found[metric["name"]]
            entry.decision = decide(metric, entry.phases)
        self.table[phase] = found
        self.raw_p99[phase] = self.raw_p99_ms()
        return found

    def send(self, requests: int, per_second: float, rows: int = 1) -> None:
        """Good requests, paced so that the server is never the bottleneck."""
        client = connect(self.triton.endpoints.http, "http")
        try:
            for i in range(requests):
                started = time.monotonic()
                start = (i * rows) % 60
                client.infer(MODEL, "1", take(self.arrays, start, start + rows), self.outputs)
                time.sleep(max(0.0, 1 / per_second - (time.monotonic() - started)))
        finally:
            client.close()

    def send_failing(self, requests: int) -> int:
        """Requests whose string input is not UTF-8: the model fails them; the error
        comes back as HTTP 500 and Triton counts a failure (reason BACKEND)."""
        bad = dict(take(self.arrays, 0, 1))
        bad["salary_range"] = np.array([[b"\xff\xfe"]], dtype=object)
        client = connect(self.triton.endpoints.http, "http")
        failed = 0
        try:
            for _ in range(requests):
                try:
                    client.infer(MODEL, "1", bad, self.outputs)
                except Exception:  # the client raises InferenceServerException
                    failed += 1
        finally:
            client.close()
        return failed

    def stall(self, times: int, pause_s: float, clients: int = 4) -> None:
        """Stop the model's backend processes (Triton's python stubs) for `pause_s`,
        `times` times, while `clients` threads keep sending: Triton keeps accepting and
        timing requests, which wait for the model, so they take up to `pause_s` more."""
        stop = threading.Event()

        def load() -> None:
            client = connect(self.triton.endpoints.http, "http", timeout=30)
            try:
                i = 0
                while not stop.is_set():
                    client.infer(MODEL, "1", take(self.arrays, i % 60, i % 60 + 1), self.outputs)
                    i += 1
                    time.sleep(0.01)
            finally:
                client.close()

        stubs = _children(self.triton.pid)
        assert stubs, "the python backend stubs were not found"
        threads = [threading.Thread(target=load) for _ in range(clients)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(times):
                time.sleep(0.25)
                for stub in stubs:
                    os.kill(stub, signal.SIGSTOP)
                time.sleep(pause_s)
                for stub in stubs:
                    os.kill(stub, signal.SIGCONT)
        finally:
            for stub in stubs:
                os.kill(stub, signal.SIGCONT)
            stop.set()
            for thread in threads:
                thread.join(timeout=60)

    def run_smoke(self, ceiling: float) -> bool:
        references = reference_sessions(self.local.artifacts)
        client = connect(self.triton.endpoints.http, "http")
        try:
            report = smoke(
                client,
                self.local.signature,
                references,
                self.arrays,
                100,
                max_latency_p99_ms=ceiling,
            )
        finally:
            client.close()
        return report.ok

    def raw_p99_ms(self) -> float:
        query = (
            f'max(nv_inference_request_summary_us{{namespace="{NAMESPACE}",'
            f'service="{MODEL}-canary",model="{MODEL}",quantile="0.99"}}) / 1000'
        )
        return first_value(instant(self.prometheus, query))

    def render(self) -> str:
        names = [m["name"] for m in self.metrics]
        head = f"{'phase':<22}" + "".join(f"{n:<30}" for n in names) + f"{'run':<14}raw p99"
        lines = [head]
        for phase, found in self.table.items():
            cells = []
            for name in names:
                entry = found[name]
                last = entry.values[-1] if entry.values else None
                shown = (
                    "not measured" if last is None else "empty" if not last else f"{last[0]:.4g}"
                )
                cells.append(f"{entry.decision.value} ({shown})".ljust(30))
            run = worst([found[n].decision for n in names]).value
            raw = f"{self.raw_p99[phase]:.4g} ms"
            lines.append(f"{phase:<22}" + "".join(cells) + f"{run:<14}{raw}")
        return "\n".join(lines)


def _children(parent: int | None) -> list[int]:
    """Processes whose parent is `parent` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                # pid (comm) state ppid ...: the name may hold spaces, so split after ')'.
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent:
            found.append(int(entry))
    return found


def _decisions(found: Mapping[str, Measured]) -> dict[str, Phase]:
    return {name: entry.decision for name, entry in found.items()}


def _ceiling(harness: Harness, name: str) -> float:
    metric = next(m for m in harness.metrics if m["name"] == name)
    return float(metric["successCondition"].rsplit("<= ", 1)[1])


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(1)


def test_the_analysis_through_the_phases_of_a_rollout(
    triton: TritonServer, prometheus: str
) -> None:
    harness = Harness(triton, prometheus)
    assert [m["name"] for m in harness.metrics] == ["requests", "error-rate", "latency-p99-ms"]
    minimum = float(harness.metrics[0]["successCondition"].rsplit(">= ", 1)[1])
    latency_ceiling = _ceiling(harness, "latency-p99-ms")
    error_ceiling = _ceiling(harness, "error-rate")
    _wait_for(lambda: bool(instant(prometheus, "up == 1")), 30, "the first scrape")

    # 1. Loaded and idle: the warm-up filled the p99 summary, but no request counts.
    idle = harness.measure("1 loaded, idle")
    assert _decisions(idle) == {"requests": N, "error-rate": N, "latency-p99-ms": P}

    # 2. The smoke Job's burst (about as many requests as min_requests): never a failure,
    # and each measurement passes exactly when its window held enough requests.
    assert harness.run_smoke(latency_ceiling), "the smoke test failed on a healthy server"
    burst = harness.measure("2 smoke burst")
    # The warm-up is still in Triton's p99 summary: the latency is not measured yet.
    assert burst["latency-p99-ms"].decision is P
    for value, phase in zip(burst["requests"].values, burst["requests"].phases, strict=True):
        assert phase is (S if value and value[0] >= minimum else N), (value, phase)
    assert F not in burst["error-rate"].phases
    assert burst["requests"].decision in (S, N) and burst["error-rate"].decision in (S, N)

    # 3. Idle for longer than both windows: the summary reads NaN, nothing counts.
    time.sleep(max(SUMMARY_WINDOW_S, harness.window_s) + 3 * SCRAPE_S)
    assert math.isnan(harness.raw_p99_ms()), "Triton's summary should be empty by now"
    quiet = harness.measure("3 idle > 60 s")
    assert _decisions(quiet) == {"requests": N, "error-rate": N, "latency-p99-ms": N}

    # 4. Steady, healthy traffic: everything passes.
    harness.send(requests=int(3 * minimum), per_second=60)
    steady = harness.measure("4 steady traffic")
    assert _decisions(steady) == {"requests": S, "error-rate": S, "latency-p99-ms": S}

    # 5. Requests stalled in flight: the p99 goes over the ceiling, errors do not.
    harness.stall(times=20, pause_s=max(0.15, 3 * latency_ceiling / 1000))
    slow = harness.measure("5 latency spike")
    assert _decisions(slow) == {"requests": S, "error-rate": S, "latency-p99-ms": F}

    # 6. Failing requests: well over the error ceiling of what the window holds.
    window_requests = slow["requests"].values[-1][0]
    failing = int(window_requests * error_ceiling * 4) + 20
    assert harness.send_failing(failing) == failing
    errors = harness.measure("6 error burst")
    assert errors["error-rate"].decision is F
    assert errors["requests"].decision is S

    print("\n" + harness.render())
