"""Alert delivery against a real Prometheus Alertmanager (API v2) on loopback.

The test starts `prometheus-alertmanager` (Debian package) itself: a free port, a minimal
config, a temporary storage path, clustering off; it waits for /-/ready and stops it after.
Where the binary is absent it skips, saying so, and fails under CI (`make test` installs it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from runtime.examples.monitor_examples import car_loan_config, car_loan_frames
from runtime.monitor.job import Progress, run_job
from tests.tools import require_tool

CONFIG = """\
route:
  receiver: "null"
  group_wait: 1h
receivers:
  - name: "null"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Upstream releases call the binary `alertmanager`.
    binary = require_tool(
        "prometheus-alertmanager", "prometheus-alertmanager", aliases=("alertmanager",)
    )
    root = tmp_path_factory.mktemp("alertmanager")
    (root / "alertmanager.yml").write_text(CONFIG)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'alertmanager.yml'}",
            f"--storage.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    f"Alertmanager did not start:\n{(root / 'alertmanager.log').read_text()}"
                )
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _alerts(url: str, **filters: str) -> list[dict[str, Any]]:
    query = "&".join(f"filter={k}%3D%22{v}%22" for k, v in filters.items())
    with urllib.request.urlopen(f"{url}/api/v2/alerts?{query}", timeout=5) as response:
        return list(json.loads(response.read()))


def test_drift_alerts_appear_in_alertmanager_with_their_labels(
    alertmanager: str, tmp_path: Path
) -> None:
    reference, analysis = car_loan_frames()
    reference.head(3000).to_parquet(tmp_path / "reference.parquet")
    pd.concat([analysis.iloc[:1500], analysis.iloc[30000:31500]]).to_parquet(
        tmp_path / "analysis.parquet"
    )
    config = car_loan_config(
        reference={"uri": str(tmp_path / "reference.parquet"), "format": "parquet"},
        analysis={"uri": str(tmp_path / "analysis.parquet"), "format": "parquet"},
        chunking={"size": 500},
        drift={"univariate": {"continuous": ["jensen_shannon"], "categorical": ["chi2"]}},
        performance=None,
        data_quality=None,
        alerts=[
            {"name": "feature-drift", "signal": "drift", "severity": "warning", "route": "oncall"}
        ],
        routes=[{"name": "oncall", "alertmanager": {"url": alertmanager}}],
        report_url="https://reports.example/car-loan-default/local/report.html",
    )
    run = run_job(config, tmp_path / "out", progress=Progress(None))
    assert run.status == "alerts" and run.exit_code == 0, run.deliveries
    (delivery,) = run.deliveries
    assert (delivery.ok, delivery.attempts, delivery.status) == (True, 1, 200)

    stored = _alerts(alertmanager, model="car-loan-default", alertname="feature-drift")
    assert len(stored) == len(run.events) > 0
    by_key = {a["labels"]["dedup_key"]: a for a in stored}
    for event in run.events:
        alert = by_key[event.dedup_key]
        assert alert["labels"] == {
            "alertname": "feature-drift",
            "severity": "warning",
            "model": "car-loan-default",
            "environment": "local",
            "signal": "drift",
            "feature": event.feature,
            "chunk": event.chunk,
            "dedup_key": event.dedup_key,
            "source": "kiln-monitor",
        }
        assert alert["annotations"]["summary"] == event.summary
        assert alert["annotations"]["version"] == "1"
        assert alert["status"]["state"] == "active"
        assert alert["generatorURL"] == config.report_url

    # A second run of the same data renews the same alerts instead of adding new ones.
    again = run_job(config, tmp_path / "out2", progress=Progress(None))
    assert [e.dedup_key for e in again.events] == [e.dedup_key for e in run.events]
    assert len(_alerts(alertmanager, model="car-loan-default")) == len(run.events)


def test_an_alertmanager_that_is_down_fails_the_job(tmp_path: Path) -> None:
    reference, analysis = car_loan_frames()
    reference.head(3000).to_parquet(tmp_path / "reference.parquet")
    analysis.iloc[30000:33000].to_parquet(tmp_path / "analysis.parquet")
    config = car_loan_config(
        reference={"uri": str(tmp_path / "reference.parquet"), "format": "parquet"},
        analysis={"uri": str(tmp_path / "analysis.parquet"), "format": "parquet"},
        chunking={"size": 500},
        drift={"univariate": {"continuous": ["jensen_shannon"], "categorical": ["chi2"]}},
        performance=None,
        data_quality=None,
        alerts=[{"name": "d", "signal": "drift", "severity": "critical", "route": "oncall"}],
        routes=[{"name": "oncall", "alertmanager": {"url": f"http://127.0.0.1:{_free_port()}"}}],
        delivery={"attempts": 2, "backoff_seconds": 0.01},
    )
    run = run_job(config, tmp_path / "out", progress=Progress(None))
    assert (run.status, run.exit_code) == ("delivery_failed", 1)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "Connection refused" in results["deliveries"][0]["error"]
    assert os.path.exists(tmp_path / "out" / "report.html")
