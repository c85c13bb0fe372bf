"""Analysis and autoscaling queries return numbers from a real Prometheus.

A real Triton and a real Prometheus scraping it (tests/integration/conftest.py);
the test sends inference load and evaluates every query Kiln rendered for
staging. Each must return one finite number, not an empty result.
"""

from __future__ import annotations

import math
import time

import pytest

from compiler.api import build
from compiler.served import served_model
from compiler.targets.quality import READERS
from runtime.local.serve import TritonServer
from runtime.serving.sample_data import load_sample, take, to_inputs
from runtime.serving.smoke import connect
from tests.integration.conftest import MODEL, ROOT, first_value, instant

pytestmark = pytest.mark.slow


def _queries() -> dict[str, str]:
    result = build(ROOT / "specs")
    assert result.ok
    found = {}
    for artifact in result.artifacts:
        document = artifact.document
        if document is None or not artifact.path.startswith(f"staging/{MODEL}/"):
            continue
        if document["kind"] == "AnalysisTemplate":
            for metric in document["spec"]["metrics"]:
                # The quality gate's readers query what its Job pushes to a Pushgateway,
                # not Triton: tests/integration/test_rollout_quality.py runs them.
                if "prometheus" in metric["provider"] and metric["name"] not in READERS:
                    found[metric["name"]] = metric["provider"]["prometheus"]["query"]
        if document["kind"] == "ScaledObject":
            found["keda"] = document["spec"]["triggers"][0]["metadata"]["query"]
    return found


def _load(triton: TritonServer, seconds: float) -> int:
    local = served_model(ROOT / "specs", MODEL, "local", ROOT / "generated")
    _, frame = load_sample([t.name for t in local.signature.inputs])
    arrays = to_inputs(frame, local.signature.inputs, 64)
    client = connect(triton.endpoints.http, "http")
    sent = 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and sent < 2000:
            start = sent % 60
            client.infer(
                MODEL,
                "1",
                take(arrays, start, start + 4),
                [t.name for t in local.signature.outputs],
            )
            sent += 1
    finally:
        client.close()
    return sent


def _value(prometheus: str, query: str) -> tuple[int, float]:
    """(number of samples, value of the first) of an instant query."""
    samples = instant(prometheus, query)
    return len(samples), first_value(samples)


def test_every_analysis_and_scaling_query_returns_a_number(
    triton: TritonServer, prometheus: str
) -> None:
    queries = _queries()
    assert {"error-rate", "latency-p99-ms", "keda"} <= set(queries)
    # Load, then wait for scrapes; a busy machine may need a few rounds before rate()
    # has two samples and Triton's p99 summary has observations in its window.
    deadline = time.monotonic() + 60
    while True:
        assert _load(triton, 3.0) > 20
        time.sleep(2)
        values = {name: _value(prometheus, query) for name, query in queries.items()}
        if values["latency-p99-ms"][1] > 0 or time.monotonic() > deadline:
            break
    for name, (count, value) in sorted(values.items()):
        assert count == 1, (name, queries[name], count)
        assert math.isfinite(value), (name, value)
    assert values["error-rate"][1] == 0.0
    assert 0 < values["latency-p99-ms"][1] < 1000, values
