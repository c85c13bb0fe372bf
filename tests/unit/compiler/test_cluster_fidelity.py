"""What a real cluster's controllers do with the rendered objects (issue 16).

Each test pins one behaviour the strict schemas accept either way: Argo CD must leave
the fields Argo Rollouts and the autoscalers own, no sync wave may chain serving to the
rest, retries and deadlines must fit what they guard, and routes must keep gRPC on its
port. The reasons, with their upstream sources, are in the renderers' comments.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from compiler.api import build
from compiler.artifact import Artifact
from compiler.ir import ModelIR
from compiler.targets import autoscaling, monitoring, serving, strategies, traffic, workflows
from compiler.targets.pipeline import pipeline
from tests.tools import REPO_ROOT

STRATEGIES = REPO_ROOT / "tests" / "golden" / "strategies" / "specs"


def _models(specs: Any) -> tuple[list[ModelIR], list[Artifact]]:
    result = build(specs)
    assert result.ok, [d.text() for d in result.diagnostics]
    return [m for m in result.resolution.models if not m.is_local], result.artifacts


@pytest.fixture(scope="module")
def example() -> tuple[list[ModelIR], list[Artifact]]:
    return _models(REPO_ROOT / "specs")


@pytest.fixture(scope="module")
def every_strategy() -> list[ModelIR]:
    return _models(STRATEGIES)[0]


def _model(models: list[ModelIR], name: str, environment: str = "production") -> ModelIR:
    return next(m for m in models if m.name == name and m.environment.name == environment)


def _by_name(models: list[ModelIR], name: str) -> ModelIR:
    return next(m for m in models if m.name == name)


def _without_autoscaler(model: ModelIR) -> ModelIR:
    return dataclasses.replace(model, serving=dataclasses.replace(model.serving, autoscaling=None))


def _application_spec(example: tuple[list[ModelIR], list[Artifact]]) -> dict[str, Any]:
    _, artifacts = example
    document = next(
        a.document for a in artifacts if a.document and a.document["kind"] == "ApplicationSet"
    )
    spec: dict[str, Any] = document["spec"]["template"]["spec"]
    return spec


def test_no_rendered_object_carries_a_sync_wave(example: Any) -> None:
    # A wave after the Rollout would wait out the whole canary (finding 4).
    _, artifacts = example
    documents = [a.document for a in artifacts if a.document]
    assert documents
    for document in documents:
        annotations = document["metadata"].get("annotations", {})
        assert "argocd.argoproj.io/sync-wave" not in annotations, document["metadata"]["name"]


def test_argo_cd_keeps_ignored_fields_when_it_syncs(example: Any) -> None:
    spec = _application_spec(example)
    assert "RespectIgnoreDifferences=true" in spec["syncPolicy"]["syncOptions"]


def test_argo_cd_leaves_route_weights_and_managed_routes_to_rollouts(example: Any) -> None:
    (rule,) = [r for r in _application_spec(example)["ignoreDifferences"]]
    assert (rule["group"], rule["kind"]) == ("networking.istio.io", "VirtualService")
    expressions = rule["jqPathExpressions"]
    assert ".spec.http[].route[].weight" in expressions
    for route in (strategies.MIRROR_ROUTE, strategies.COHORT_ROUTE):
        assert f'.spec.http[] | select(.name == "{route}")' in expressions


def test_no_ignore_rule_hides_replicas_a_spec_sets(example: Any) -> None:
    # With RespectIgnoreDifferences a replicas rule would freeze the count of models
    # without an autoscaler; under an autoscaler the field is simply not rendered.
    for rule in _application_spec(example)["ignoreDifferences"]:
        assert "/spec/replicas" not in rule.get("jsonPointers", [])


def test_autoscaled_workloads_leave_replicas_to_the_autoscaler(example: Any) -> None:
    models, _ = example
    for name in ("car-loan-default", "car-price"):
        model = _model(models, name)
        assert model.serving.autoscaling is not None
        assert "replicas" not in serving.workload(model, {"config.pbtxt": ""})["spec"]
        fixed = _without_autoscaler(model)
        assert (
            serving.workload(fixed, {"config.pbtxt": ""})["spec"]["replicas"]
            == model.serving.replicas.min
        )


def test_progress_deadline_covers_provisioning_beyond_the_startup_probe(example: Any) -> None:
    model = _model(example[0], "car-loan-default")
    spec = serving.workload(model, {"config.pbtxt": ""})["spec"]
    probe = spec["template"]["spec"]["containers"][0]["startupProbe"]
    startup_budget = probe["periodSeconds"] * probe["failureThreshold"]
    assert spec["progressDeadlineSeconds"] >= startup_budget + 15 * 60
    assert spec["progressDeadlineAbort"] is True


def test_blue_green_preview_starts_at_the_minimum_under_an_autoscaler(example: Any) -> None:
    model = _model(example[0], "car-price")
    blue_green = strategies.strategy(model)["blueGreen"]
    assert blue_green["previewReplicaCount"] == model.serving.replicas.min
    assert "previewReplicaCount" not in strategies.strategy(_without_autoscaler(model))["blueGreen"]


def test_virtual_service_routes_keep_the_port_of_the_request(every_strategy: Any) -> None:
    for name in ("canary-istio-gpu", "shadow-istio-cpu", "ab-istio-gpu"):
        model = _by_name(every_strategy, name)
        (route,) = traffic.virtual_service(model)["spec"]["http"]
        assert route["name"] == strategies.PRIMARY_ROUTE
        assert "match" not in route
        assert all("port" not in d["destination"] for d in route["route"])
        istio = strategies.strategy(model)["canary"]["trafficRouting"]["istio"]
        assert istio["virtualService"]["routes"] == [strategies.PRIMARY_ROUTE]


def test_a_single_pod_is_never_evicted_by_a_drain(example: Any) -> None:
    model = _model(example[0], "car-loan-default", "staging")
    assert model.serving.replicas.min == 1
    spec = autoscaling.disruption_budget(model)["spec"]
    assert spec.get("minAvailable") == 1 and "maxUnavailable" not in spec
    assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    two = autoscaling.disruption_budget(_model(example[0], "car-loan-default"))["spec"]
    assert two.get("maxUnavailable") == 1 and "minAvailable" not in two


def test_retry_backoff_has_no_total_window(example: Any) -> None:
    model = _model(example[0], "car-loan-default")
    plan = pipeline(model)
    assert plan is not None
    template = workflows.workflow_template(model, plan)
    steps = [t for t in template["spec"]["templates"] if "container" in t]
    assert steps
    for step in steps:
        assert "maxDuration" not in step["retryStrategy"]["backoff"]


def test_monitor_secret_volumes_are_optional(example: Any) -> None:
    model = _model(example[0], "car-loan-default")
    cron = monitoring.cron_workflow(model)
    assert cron is not None
    secrets = [v for v in cron["spec"]["workflowSpec"]["volumes"] if "secret" in v]
    assert secrets, "the example's Slack route mounts a Secret"
    assert all(v["secret"]["optional"] is True for v in secrets)


def test_example_environments_label_for_kube_prometheus_stack(example: Any) -> None:
    models, _ = example
    for model in models:
        monitor = autoscaling.service_monitor(model)
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
