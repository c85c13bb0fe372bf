"""A model with no version yet: training and monitoring compile, serving does not.

The specs are the no-version golden case (tests/golden/no-version), copied so a test
can declare a version in one environment.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from compiler.api import build
from compiler.diagnostics import Severity, merge
from compiler.plan.facts import model_facts
from compiler.provenance import provenance_lines
from compiler.served import NotServable, model_ir
from tests.tools import REPO_ROOT

CASE = REPO_ROOT / "tests" / "golden" / "no-version" / "specs"
MODEL = "first"


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    return Path(shutil.copytree(CASE, tmp_path / "specs"))


def _served_in_staging(specs: Path) -> None:
    """Version 1 declared, served in staging only (the base sets no serving.version)."""
    path = specs / "first.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "  serving: {max_batch_size: 8,",
        "  versions: [{version: 1, artifact: {uri: first/1/model.onnx}, metrics: {mae: 3}}]\n"
        "  environments: {staging: {serving: {version: 1}}}\n"
        "  serving: {max_batch_size: 8,",
    )
    path.write_text(text, encoding="utf-8")


def test_training_and_monitoring_render_and_serving_does_not(specs: Path) -> None:
    result = build(specs)
    assert result.ok
    paths = {a.path for a in result.artifacts}
    assert not any("/triton/" in p or "rollout-" in p or "/service-" in p for p in paths)
    assert {"local/first/pipeline.json", "local/first/monitor.json"} <= paths
    assert "staging/first/workflowtemplate-first-training.yaml" in paths
    assert "staging/first/cronworkflow-first-monitor.yaml" in paths
    for model in result.resolution.models:
        assert not model.is_served


def test_the_first_run_publishes_version_1_with_no_baseline(specs: Path) -> None:
    (pipeline,) = [a for a in build(specs).artifacts if a.path == "local/first/pipeline.json"]
    plan = json.loads(pipeline.content)
    steps = {s["name"]: s["command"] for s in plan["steps"]}
    assert "--baseline" not in steps["evaluate"]
    assert plan["parameters"]["version"] == "1"


def test_serving_alerts_are_left_out_with_a_warning(specs: Path) -> None:
    result = build(specs)
    (warning,) = [d for d in merge(result.diagnostics) if d.code == "KILN1641"]
    assert warning.severity is Severity.WARNING and (warning.line, warning.col) == (32, 35)
    assert "no version is served yet" in warning.message
    assert warning.environments == ("local", "staging")
    for model in result.resolution.models:
        assert [a.name for a in model.alerts] == ["x-drift"]
    rule = next(a for a in result.artifacts if a.path.endswith("prometheusrule-first.yaml"))
    assert "latency" not in rule.content


def test_the_plan_says_not_served_yet(specs: Path) -> None:
    model = build(specs).resolution.find(MODEL, "staging")
    facts = model_facts(model)
    assert facts["serving version"] == "not served yet"
    assert "replicas" not in facts and "max batch size" not in facts
    assert not any(topic.startswith("serving.") for topic in facts)
    assert "training gates" in facts and "monitoring schedule" in facts


def test_serve_and_smoke_say_how_to_get_a_first_version(specs: Path) -> None:
    with pytest.raises(NotServable) as raised:
        model_ir(specs, MODEL, "local")
    message = str(raised.value)
    assert "has no version served in environment local yet" in message
    assert f"kiln run {MODEL} --local" in message


def test_explain_says_no_version_is_served(specs: Path) -> None:
    result = build(specs)
    model = result.resolution.find(MODEL, "local")
    lines = provenance_lines(model, result.resolution.root, model.environment.trust)
    assert lines == ["served versions of first in local:", "    none: not served yet"]


def test_a_version_served_in_one_environment_only(specs: Path) -> None:
    _served_in_staging(specs)
    result = build(specs)
    assert result.ok
    staging = result.resolution.find(MODEL, "staging")
    local = result.resolution.find(MODEL, "local")
    assert staging.is_served and not local.is_served
    paths = {a.path for a in result.artifacts}
    assert "staging/first/triton/config.pbtxt" in paths
    assert not any(p.startswith("local/first/triton/") for p in paths)
    # The next run publishes version 2 in both; only staging has a baseline to gate against.
    assert model_facts(staging)["serving version"] == "1"
    assert [d.environments for d in result.diagnostics if d.code == "KILN1641"] == [("local",)]
    pipelines = {a.path: a for a in result.artifacts if a.path.endswith("pipeline.json")}
    local_plan = json.loads(pipelines["local/first/pipeline.json"].content)
    assert local_plan["parameters"]["version"] == "2"


def test_a_batch_job_alone_is_something_to_deploy(specs: Path) -> None:
    """Scoring offline with a declared version before any version serves: the batch
    objects are what the cluster environment deploys, so KILN1642 does not apply."""
    path = specs / "first.yaml"
    text = path.read_text(encoding="utf-8")
    start, end = text.index("  training:\n"), text.index("  alerts:\n")  # no training either
    batch = (
        "  versions: [{version: 1, artifact: {uri: first/1/model.onnx}, metrics: {mae: 3}}]\n"
        "  batch: [{name: daily, input: {uri: first/rows/}, output: first/scored/, version: 1}]\n"
    )
    assert text[end:].count("\n") == 3  # the alerts are the file's last block: dropped
    path.write_text(text[:start] + batch, encoding="utf-8")
    result = build(specs)
    assert result.ok, [d.message for d in result.diagnostics]
    paths = {a.path for a in result.artifacts}
    assert "staging/first/workflowtemplate-first-batch-daily.yaml" in paths
    assert not any("/triton/" in p for p in paths)
