"""The Project's `cluster` block: versions and prerequisites checked, and what it renders.

Versions below the minimum and selectors the labels miss are also error-corpus cases
(tests/errors/cases/cluster-*); here are the rendering and the warning, which the
corpus (every case must fail to compile) cannot hold.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from compiler.api import build
from compiler.ir import ModelIR
from compiler.rules.cluster import MINIMUM_VERSIONS, check_cluster
from compiler.spec.project import ProjectSpec
from compiler.targets import analysis, monitoring, serving, workflows
from compiler.targets.pipeline import pipeline
from tests.tools import REPO_ROOT

INJECT = "sidecar.istio.io/inject"


@pytest.fixture(scope="module")
def loan() -> ModelIR:
    result = build(REPO_ROOT / "specs")
    assert result.ok, [d.text() for d in result.diagnostics]
    return next(
        m
        for m in result.resolution.models
        if m.name == "car-loan-default" and m.environment.name == "production"
    )


def _without_native_sidecars(model: ModelIR) -> ModelIR:
    project = dataclasses.replace(model.project, istio_native_sidecars=False)
    return dataclasses.replace(model, project=project)


def _job_pods(model: ModelIR) -> dict[str, dict[str, Any]]:
    """The pod metadata of every pod that runs to completion, by what it is."""
    template = analysis.analysis_template(model)
    assert template is not None
    smoke = next(m for m in template["spec"]["metrics"] if m["name"] == "smoke-test")
    plan = pipeline(model)
    assert plan is not None
    cron = monitoring.cron_workflow(model)
    assert cron is not None
    return {
        "smoke": smoke["provider"]["job"]["spec"]["template"].get("metadata", {}),
        "training": workflows.workflow_template(model, plan)["spec"].get("podMetadata", {}),
        "monitor": cron["spec"]["workflowSpec"].get("podMetadata", {}),
    }


def _init_security(model: ModelIR) -> dict[str, Any]:
    pod = serving.workload(model, {"config.pbtxt": ""})["spec"]["template"]["spec"]
    security: dict[str, Any] = pod["initContainers"][0]["securityContext"]
    return security


def test_without_native_sidecars_job_pods_are_not_injected(loan: ModelIR) -> None:
    model = _without_native_sidecars(loan)
    for name, metadata in _job_pods(model).items():
        assert metadata.get("labels", {}).get(INJECT) == "false", name


def test_without_native_sidecars_the_init_container_runs_as_the_proxy_user(
    loan: ModelIR,
) -> None:
    assert _init_security(_without_native_sidecars(loan))["runAsUser"] == 1337


def test_native_sidecars_leave_injection_and_user_alone(loan: ModelIR) -> None:
    assert loan.project.istio_native_sidecars  # the example Project declares them
    for name, metadata in _job_pods(loan).items():
        assert INJECT not in metadata.get("labels", {}), name
    assert "runAsUser" not in _init_security(loan)


def test_declared_artifact_repository_is_every_workflows_reference(loan: ModelIR) -> None:
    plan = pipeline(loan)
    assert plan is not None
    cron = monitoring.cron_workflow(loan)
    assert cron is not None
    expected = {"configMap": "artifact-repositories", "key": "default-v1"}
    assert workflows.workflow_template(loan, plan)["spec"]["artifactRepositoryRef"] == expected
    assert cron["spec"]["workflowSpec"]["artifactRepositoryRef"] == expected
    project = dataclasses.replace(loan.project, artifact_repository=None)
    unset = dataclasses.replace(loan, project=project)
    assert "artifactRepositoryRef" not in workflows.workflow_template(unset, plan)["spec"]


def _project(**cluster: Any) -> ProjectSpec:
    return ProjectSpec.model_validate(
        {
            "git": {"repo": "https://github.com/acme/x.git"},
            "images": {"runtime": "ghcr.io/acme/r:1", "triton": "nvcr.io/nvidia/t:1"},
            "storage": {"models": "s3://m", "data": "s3://d"},
            "cluster": cluster,
            "environments": [{"name": "staging", "monitoring_labels": {"release": "kps"}}],
            "alert_routes": [
                {"name": "oncall", "alertmanager": {"url": "http://alertmanager.monitoring:9093"}}
            ],
        }
    )


def test_alertmanager_host_is_a_warning_only_with_the_operator_declared() -> None:
    (finding,) = check_cluster(_project(versions={"prometheus_operator": "0.85"}))
    assert (finding.code, finding.warning) == ("KILN1607", True)
    assert finding.path == ("spec", "alert_routes", 0, "alertmanager", "url")
    assert check_cluster(_project()) == []


def test_versions_at_the_minimum_pass_and_one_below_fails() -> None:
    at_minimum = {
        key: f"{m.version[0]}.{m.version[1]}"
        for key, m in MINIMUM_VERSIONS.items()
        if key != "kubernetes"
    }
    found = check_cluster(_project(versions=at_minimum))
    assert [f for f in found if f.code == "KILN1605"] == []
    major, minor = MINIMUM_VERSIONS["istio"].version
    (finding,) = check_cluster(_project(versions={"istio": f"{major}.{minor - 1}"}))
    assert finding.code == "KILN1605" and not finding.warning
    assert finding.path == ("spec", "cluster", "versions", "istio")


def test_selector_carried_by_the_labels_passes() -> None:
    assert check_cluster(_project(prometheus_selector={"release": "kps"})) == []
    (finding,) = check_cluster(_project(prometheus_selector={"release": "other"}))
    assert finding.code == "KILN1606"


def test_readme_states_every_minimum_version() -> None:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| ([A-Za-z][A-Za-z ]+?) \| (\d+\.\d+) \|", text, re.MULTILINE))
    expected = {m.name: f"{m.version[0]}.{m.version[1]}" for m in MINIMUM_VERSIONS.values()}
    assert rows == expected
