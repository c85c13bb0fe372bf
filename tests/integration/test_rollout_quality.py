"""The quality gate end to end: the example's compiled AnalysisTemplate, its comparison Job's
command run for real over captured partitions of real traffic, a real Pushgateway, and a
real Prometheus scraping it; the readers' queries are evaluated by Prometheus and judged
with Argo Rollouts' rules (tests/argo_analysis.py).

Phases: nothing captured (inconclusive, never a pass), the same model on both versions
(success), a broken new version (failed). Needs `prometheus` and `prometheus-pushgateway`
(Debian packages), which `make test` installs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from compiler.api import build
from compiler.serialize import to_yaml
from compiler.targets.quality import READERS
from runtime.contract import quality as contract
from tests.argo_analysis import Phase, measure, vector_result
from tests.captured_data import car_loan_rows, score, write_captured
from tests.integration.conftest import ROOT, free_port, instant
from tests.tools import require_tool

TEMPLATE = "staging/car-loan-default/analysistemplate-car-loan-default-analysis.yaml"
ROWS = 2000


def _start(command: list[str], url: str, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.terminate()
                pytest.fail(f"{command[0]} did not become ready:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(Pushgateway URL, Prometheus URL): Prometheus scrapes the Pushgateway every second,
    keeping the pushed labels (honor_labels), as a Pushgateway scrape is configured."""
    gateway_binary = require_tool("prometheus-pushgateway", "prometheus-pushgateway")
    prometheus_binary = require_tool("prometheus", "prometheus")
    folder = tmp_path_factory.mktemp("quality")
    gateway_port, prometheus_port = free_port(), free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    gateway_process = _start(
        [gateway_binary, f"--web.listen-address=127.0.0.1:{gateway_port}"],
        gateway,
        folder / "pushgateway.log",
    )
    config = {
        "scrape_configs": [
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "scrape_interval": "1s",
                "static_configs": [{"targets": [f"127.0.0.1:{gateway_port}"]}],
            }
        ]
    }
    (folder / "prometheus.yml").write_text(to_yaml(config), encoding="utf-8")
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    try:
        prometheus_process = _start(
            [
                prometheus_binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            prometheus,
            folder / "prometheus.log",
        )
    except BaseException:
        _stop(gateway_process)
        raise
    try:
        yield gateway, prometheus
    finally:
        _stop(prometheus_process)
        _stop(gateway_process)
        shutil.rmtree(folder / "data", ignore_errors=True)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    result = build(ROOT / "specs")
    assert result.ok, [d.text() for d in result.diagnostics]
    (document,) = [a.document for a in result.artifacts if a.path == TEMPLATE]
    assert document is not None
    return document


def _command(template: dict[str, Any], captured: Path, gateway: str) -> list[str]:
    """The Job's command as rendered, with this machine's store and Pushgateway."""
    (metric,) = [m for m in template["spec"]["metrics"] if m["name"] == "quality-measure"]
    command = list(
        metric["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]["command"]
    )
    command[command.index("--captured") + 1] = str(captured)
    command[command.index("--pushgateway") + 1] = gateway
    return [sys.executable, *command[1:]]


def _window_s(command: list[str]) -> int:
    return int(command[command.index("--window") + 1])


def _judge(template: dict[str, Any], prometheus: str, rows: int) -> dict[str, Phase]:
    """Each reader's phase once Prometheus has scraped the push of `rows` rows."""
    readers = [m for m in template["spec"]["metrics"] if m["name"] in READERS]
    rows_query = next(m for m in readers if m["name"] == "quality-rows")
    deadline = time.monotonic() + 30
    while vector_result(instant(prometheus, rows_query["provider"]["prometheus"]["query"])) != [
        float(rows)
    ]:
        assert time.monotonic() < deadline, "Prometheus never scraped the push"
        time.sleep(0.5)
    phases = {}
    for metric in readers:
        result = vector_result(instant(prometheus, metric["provider"]["prometheus"]["query"]))
        phases[metric["name"]] = measure(
            result, metric["successCondition"], metric["failureCondition"]
        )
    return phases


def _run(command: list[str]) -> None:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == contract.EXIT_MEASURED, done.stderr


def test_the_quality_gate_through_a_rollout(
    servers: tuple[str, str], template: dict[str, Any], tmp_path: Path
) -> None:
    gateway, prometheus = servers
    captured = tmp_path / "captured"
    command = _command(template, captured, gateway)
    version = int(command[command.index("--version") + 1])
    start = datetime.now(UTC) - timedelta(seconds=_window_s(command) - 30)

    # 1. Nothing captured yet: measured, pushed as zero rows, judged inconclusive.
    _run(command)
    assert _judge(template, prometheus, 0) == {
        "quality-rows": Phase.INCONCLUSIVE,
        "prediction-shift": Phase.INCONCLUSIVE,
    }

    # 2. The same model answers both versions' requests: a pass.
    rows = car_loan_rows().head(2 * ROWS)
    scored, broken = score(rows), score(rows, broken=True)
    write_captured(captured, "staging", version - 1, scored.head(ROWS), start, 0.1)
    write_captured(captured, "staging", version, scored.iloc[ROWS:], start, 0.1)
    _run(command)
    assert _judge(template, prometheus, ROWS) == {
        "quality-rows": Phase.SUCCESSFUL,
        "prediction-shift": Phase.SUCCESSFUL,
    }

    # 3. The new version is broken: its shift fails the gate. One row fewer than in 2, so
    # that the judge waits for this push's scrape, not the last one's.
    shutil.rmtree(captured / "environment=staging" / f"version={version}")
    write_captured(captured, "staging", version, broken.iloc[ROWS + 1 :], start, 0.1)
    _run(command)
    phases = _judge(template, prometheus, ROWS - 1)
    assert phases == {"quality-rows": Phase.SUCCESSFUL, "prediction-shift": Phase.FAILED}
