"""Every PromQL expression Kiln renders is valid for Prometheus (checked with promtool).

Expressions come from the compiled example: analysis templates, KEDA triggers,
PrometheusRule groups and the Grafana dashboards. Needs `promtool` (Debian package
`prometheus`), which `make test` installs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compiler.api import build
from compiler.artifact import Artifact
from compiler.serialize import to_yaml
from tests.tools import REPO_ROOT, require_tool

ROOT = REPO_ROOT
TRITON_METRICS = {
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_queue_duration_us",
    "nv_inference_request_summary_us",
    "nv_gpu_utilization",
}


@pytest.fixture(scope="module")
def artifacts() -> list[Artifact]:
    result = build(ROOT / "specs")
    assert result.ok, [d.text() for d in result.diagnostics]
    return result.artifacts


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def expressions(artifacts: list[Artifact]) -> list[tuple[str, str]]:
    """(where, PromQL) for every query Kiln renders."""
    found: list[tuple[str, str]] = []
    for artifact in artifacts:
        document = artifact.document
        if document is None:
            continue
        for key, value in _walk(document):
            if key in ("query", "expr") and isinstance(value, str):
                found.append((artifact.path, value))
        if document["kind"] == "ConfigMap" and "dashboard" in document["metadata"]["name"]:
            for text in document["data"].values():
                for key, value in _walk(json.loads(text)):
                    if key == "expr":
                        found.append((artifact.path, value))
    return found


def test_the_example_renders_queries_of_every_kind(artifacts: list[Artifact]) -> None:
    kinds = {path.split("/")[-1].split("-")[0] for path, _ in expressions(artifacts)}
    assert {"analysistemplate", "scaledobject", "prometheusrule", "configmap"} <= kinds


def test_every_expression_passes_promtool(artifacts: list[Artifact], tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    queries = expressions(artifacts)
    rules = [{"record": f"kiln:check_{i}", "expr": q} for i, (_, q) in enumerate(queries)]
    path = tmp_path / "rules.yaml"
    path.write_text(to_yaml({"groups": [{"name": "kiln", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_every_prometheus_rule_group_passes_promtool(
    artifacts: list[Artifact], tmp_path: Path
) -> None:
    promtool = require_tool("promtool", "prometheus")
    rules = [a for a in artifacts if a.document and a.document["kind"] == "PrometheusRule"]
    assert rules
    for artifact in rules:
        assert artifact.document is not None
        path = tmp_path / "rule.yaml"
        path.write_text(to_yaml({"groups": artifact.document["spec"]["groups"]}), encoding="utf-8")
        result = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, artifact.path + result.stdout + result.stderr


def test_a_broken_expression_is_caught(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    path = tmp_path / "rules.yaml"
    rule = {"record": "kiln:broken", "expr": "sum(rate(nv_inference_request_success[2m]) /"}
    path.write_text(to_yaml({"groups": [{"name": "x", "rules": [rule]}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode != 0


@pytest.fixture(scope="module")
def monitor_metric_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The metric families a real run of the monitor job writes to metrics.prom."""
    from runtime.contract.monitor_config import config_text
    from runtime.examples.monitor_examples import car_loan_config, car_loan_frames
    from runtime.monitor import job as monitor

    folder = tmp_path_factory.mktemp("monitor")
    reference, analysis = car_loan_frames()
    reference.head(10_000).to_parquet(folder / "reference.parquet")
    analysis.head(10_000).to_parquet(folder / "analysis.parquet")
    config = car_loan_config(
        reference={"uri": str(folder / "reference.parquet"), "format": "parquet"},
        analysis={"uri": str(folder / "analysis.parquet"), "format": "parquet"},
        chunking={"size": 2500},
    )
    (folder / "monitor.json").write_text(config_text(config), encoding="utf-8")
    code = monitor.main(
        ["--config", str(folder / "monitor.json"), "--out", str(folder / "out"), "--quiet"]
    )
    assert code == 0
    text = (folder / "out" / "metrics.prom").read_text(encoding="utf-8")
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_queries_use_only_metrics_that_triton_or_kiln_export(
    artifacts: list[Artifact], monitor_metric_names: set[str]
) -> None:
    import re

    names = set()
    for _, query in expressions(artifacts):
        names |= set(re.findall(r"\b(nv_[a-z_]+|kiln_monitor_[a-z_]+)\b", query))
    kiln = {n for n in names if n.startswith("kiln_monitor_")}
    assert names - kiln <= TRITON_METRICS
    assert kiln, "the example's rules and dashboards read the monitor's metrics"
    assert kiln <= monitor_metric_names, kiln - monitor_metric_names
