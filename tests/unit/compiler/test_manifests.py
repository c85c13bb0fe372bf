"""Strict validation of rendered manifests, and mutations that it must reject.

Needs the official schemas in ../shared/schemas (the CRDs of Argo Rollouts, Argo
Workflows, Istio, KEDA, Prometheus Operator); skips with that reason without them.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from compiler.api import build
from compiler.artifact import Artifact
from compiler.checks.manifests import check_manifests
from compiler.checks.schemas import (
    MAX_MESSAGE,
    SchemaProblem,
    SchemaSet,
    _run,
    compile_validator,
    crd_to_json_schema,
    strict_json_schema,
)
from tests.tools import REPO_ROOT

ROOT = REPO_ROOT
SHARED = ROOT.parent / "shared" / "schemas"
needs_schemas = pytest.mark.skipif(
    not SHARED.is_dir(), reason="the official schemas are not in ../shared/schemas"
)


@pytest.fixture(scope="module")
def example() -> list[Artifact]:
    result = build(ROOT / "specs", SHARED)
    assert result.ok, [d.text() for d in result.diagnostics]
    return result.artifacts


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    return SchemaSet("1.33", SHARED)


def _find(artifacts: list[Artifact], kind: str, environment: str = "staging") -> Artifact:
    for artifact in artifacts:
        document = artifact.document
        if document and document["kind"] == kind and artifact.path.startswith(environment):
            return artifact
    raise AssertionError(f"no {kind} rendered in {environment}")


def _mutated(artifact: Artifact, change: Any) -> Artifact:
    document = copy.deepcopy(artifact.document)
    change(document)
    return dataclasses.replace(artifact, document=document)


def _messages(artifacts: list[Artifact], schemas: SchemaSet) -> list[str]:
    return [f"{p.artifact.path} {p.path}: {p.message}" for p in check_manifests(artifacts, schemas)]


@needs_schemas
def test_every_example_manifest_passes_strict_validation(
    example: list[Artifact], schemas: SchemaSet
) -> None:
    kinds = {a.document["kind"] for a in example if a.document}
    assert {"Rollout", "Service", "AnalysisTemplate", "WorkflowTemplate", "CronWorkflow"} <= kinds
    assert _messages(example, schemas) == []
    assert schemas.unchecked == set()


@needs_schemas
@pytest.mark.parametrize(
    ("kind", "change", "expected"),
    [
        (
            "Rollout",
            lambda d: d["spec"].__setitem__("replicaz", 2),
            "spec: Additional properties are not allowed ('replicaz' was unexpected) "
            "(argo-rollouts/v1.9.1/rollout-crd.yaml)",
        ),
        (
            "Rollout",
            lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__(
                "imagePullPolicy", 3
            ),
            'spec.template.spec.containers[0].imagePullPolicy: 3 is not of type "string"',
        ),
        (
            "Service",
            lambda d: d["spec"]["ports"][0].__setitem__("port", "http"),
            'spec.ports[0].port: "http" is not of type "integer" '
            "(kubernetes-validate v1.33 strict)",
        ),
        (
            "VirtualService",
            lambda d: d["spec"]["http"][0].__setitem__("rout", []),
            "spec.http[0]: Additional properties are not allowed ('rout' was unexpected) "
            "(istio/1.30.3/crd-all.gen.yaml)",
        ),
        (
            "ScaledObject",
            lambda d: d["spec"].__setitem__("maxReplicaCount", "eight"),
            'spec.maxReplicaCount: "eight" is not of type "integer" '
            "(keda/v2.20.2/keda.sh_scaledobjects.yaml)",
        ),
        (
            "ServiceMonitor",
            lambda d: d["spec"]["endpoints"][0].__setitem__("intervall", "15s"),
            "spec.endpoints[0]: Additional properties are not allowed ('intervall' was",
        ),
        (
            "AnalysisTemplate",
            lambda d: d["spec"]["metrics"][0].__setitem__("count", []),
            "spec.metrics[0].count",
        ),
        (
            "WorkflowTemplate",
            lambda d: d["spec"]["templates"][-1]["container"].__setitem__("imagee", "x"),
            "('imagee' was unexpected) (argo-workflows/v3.7.18/schema.json)",
        ),
        (
            "WorkflowTemplate",
            lambda d: d["spec"]["templates"][-1]["container"].__setitem__("imagee", "x"),
            "('imagee' was unexpected) (argo-workflows/v4.1.2/schema.json)",
        ),
        (
            "CronWorkflow",
            lambda d: d["spec"].__setitem__("concurrencyPolicy", 1),
            'spec.concurrencyPolicy: 1 is not of type "string"',
        ),
        (
            "Rollout",
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"][
                "limits"
            ].__setitem__("cpu", "4 cores"),
            "spec.template.spec.containers[0].resources.limits.cpu: '4 cores' is not a quantity",
        ),
        (
            "Rollout",
            lambda d: d["spec"]["strategy"]["canary"].__setitem__("canaryService", "nowhere"),
            "spec.strategy.canary.canaryService: refers to Service 'nowhere', "
            "which is not rendered",
        ),
        (
            "Rollout",
            lambda d: d["spec"]["template"]["spec"]["volumes"][1]["configMap"].__setitem__(
                "name", "gone"
            ),
            "configMap.name: refers to ConfigMap 'gone', which is not rendered",
        ),
        (
            "Rollout",
            lambda d: d["spec"]["strategy"]["canary"]["steps"][2]["analysis"]["templates"][
                0
            ].__setitem__("templateName", "missing-analysis"),
            "refers to AnalysisTemplate 'missing-analysis', which is not rendered",
        ),
        (
            "Service",
            lambda d: d["metadata"]["labels"].__setitem__("kiln.dev/environment", "x" * 64),
            "metadata.labels.kiln.dev/environment: label value",
        ),
        (
            "Service",
            lambda d: d["metadata"]["labels"].__setitem__("team", {"nested": 1}),
            "metadata.labels.team: label value {'nested': 1} is invalid",
        ),
        (
            "Service",
            lambda d: d["metadata"].__setitem__("name", "9-starts-with-a-digit"),
            "metadata.name: '9-starts-with-a-digit' is not a valid name",
        ),
    ],
)
def test_mutations_are_rejected(
    example: list[Artifact], schemas: SchemaSet, kind: str, change: Any, expected: str
) -> None:
    target = _find(example, kind)
    mutated = [_mutated(a, change) if a is target else a for a in example]
    messages = _messages(mutated, schemas)
    assert any(expected in m for m in messages), messages
    assert all(target.path in m for m in messages if expected in m)


def test_crd_translation_handles_int_or_string_nullable_and_go_regex() -> None:
    schema = crd_to_json_schema(
        {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "size": {
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "x-kubernetes-int-or-string": True,
                    "nullable": True,
                },
                "note": {"type": "string", "nullable": True},
                "mode": {"type": "string", "pattern": "^(?i)(abort|warn)?$"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    )
    properties = schema["properties"]
    # A type list, not `anyOf`: the same meaning, without an exception per value.
    assert properties["port"] == {"type": ["integer", "string"]}
    assert properties["size"] == {"type": ["integer", "string", "null"]}
    assert properties["note"]["type"] == ["string", "null"]
    validator = compile_validator(schema)
    for port in (8080, "http"):
        assert validator.is_valid({"port": port, "size": None})
    for port in (1.5, None, [], True):
        errors = list(validator.iter_errors({"port": port}))
        assert [e.instance_path for e in errors] == [["port"]], port
    assert properties["mode"]["pattern"] == "(?i)^(abort|warn)?$"
    assert schema["additionalProperties"] is False
    assert "additionalProperties" not in properties["free"]
    assert set(properties) >= {"apiVersion", "kind", "metadata"}


def test_unknown_kubernetes_version_is_reported() -> None:
    from compiler.checks.schemas import UnknownKind

    with pytest.raises(UnknownKind, match=r"no schemas for Kubernetes 1\.2"):
        SchemaSet("1.2", None).validate({"apiVersion": "v1", "kind": "Service"})


GOLDEN = sorted(p.parent for p in (ROOT / "tests" / "golden").glob("*/specs"))


@needs_schemas
@pytest.mark.parametrize("case", GOLDEN, ids=[p.name for p in GOLDEN])
def test_every_golden_manifest_passes_strict_validation(case: Path, schemas: SchemaSet) -> None:
    result = build(case / "specs", SHARED)
    assert result.ok, [d.text() for d in result.diagnostics]
    assert _messages(result.artifacts, schemas) == []
    # every custom kind the case renders was checked against a CRD or schema bundle
    assert schemas.unchecked == set()


def test_strategies_case_covers_every_strategy_and_traffic_mode() -> None:
    result = build(ROOT / "tests/golden/strategies/specs")
    assert result.ok
    seen = {
        (m.rollout.strategy, m.rollout.traffic, m.serving.resources.gpus > 0)
        for m in result.resolution.models
    }
    strategies = {"canary", "blue_green", "shadow", "ab", "recreate"}
    assert {s for s, _, _ in seen} == strategies
    assert {("canary", "istio"), ("canary", "replicas")} <= {(s, t) for s, t, _ in seen}
    assert {gpu for _, _, gpu in seen} == {True, False}


def test_schema_problems_name_the_list_item_at_fault_inside_a_reference() -> None:
    schema = {
        "$ref": "#/definitions/top",
        "definitions": {
            "top": {
                "type": "object",
                "properties": {"items": {"type": "array", "items": {"$ref": "#/definitions/item"}}},
            },
            "item": {"type": "object", "properties": {"size": {"type": "integer"}}},
        },
    }
    validator = compile_validator(schema)
    assert _run(validator, {"items": [{"size": 1}, {"size": 2}]}, "s") == []
    assert _run(validator, {"items": [{"size": 1}, {"size": "big"}]}, "s") == [
        SchemaProblem("s", "items[1].size", '"big" is not of type "integer"')
    ]


def test_every_schema_problem_is_reported_in_path_order() -> None:
    schema = strict_json_schema(
        {
            "type": "object",
            "properties": {
                "b": {"type": "object", "properties": {"x": {"type": "string"}}},
                "a": {"type": "integer", "minimum": 1},
                "when": {"type": "string", "format": "date-time"},
            },
        }
    )
    document = {"when": "yesterday", "b": {"x": 1, "y": 2}, "a": 0, "c": True}
    problems = _run(compile_validator(schema), document, "s")
    assert [(p.path, p.message) for p in problems] == [
        ("(document)", "Additional properties are not allowed ('c' was unexpected)"),
        ("a", "0 is less than the minimum of 1"),
        ("b", "Additional properties are not allowed ('y' was unexpected)"),
        ("b.x", '1 is not of type "string"'),
        ("when", '"yesterday" is not a "date-time"'),
    ]


def test_a_long_schema_message_is_cut() -> None:
    validator = compile_validator({"type": "object", "properties": {"s": {"type": "string"}}})
    (problem,) = _run(validator, {"s": {f"key{i}": i for i in range(100)}}, "s")
    assert len(problem.message) == MAX_MESSAGE
    assert problem.message.endswith("…")
