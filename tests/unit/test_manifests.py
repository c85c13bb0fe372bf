"""Strict validation of rendered manifests, and mutations that it must reject.

Needs the official schemas in ../shared/schemas (the CRDs of Argo Rollouts, Argo
Workflows, Istio, KEDA, Prometheus Operator); skips with that reason without them.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest

from compiler.api import build
from compiler.artifact import Artifact
from compiler.checks.manifests import check_manifests
from compiler.checks.schemas import SchemaSet, compile_validator, crd_to_json_schema

ROOT = Path(__file__).resolve().parents[2]
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
            "spec: must not contain {'replicaz'} properties "
            "(argo-rollouts/v1.9.1/rollout-crd.yaml)",
        ),
        (
            "Rollout",
            lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__(
                "imagePullPolicy", 3
            ),
            "spec.template.spec.containers[0].imagePullPolicy: must be string",
        ),
        (
            "Service",
            lambda d: d["spec"]["ports"][0].__setitem__("port", "http"),
            "spec.ports[0].port: must be integer (kubernetes-validate v1.33 strict)",
        ),
        (
            "VirtualService",
            lambda d: d["spec"]["http"][0].__setitem__("rout", []),
            "spec.http[0]: must not contain {'rout'} properties (istio/1.30.3/crd-all.gen.yaml)",
        ),
        (
            "ScaledObject",
            lambda d: d["spec"].__setitem__("maxReplicaCount", "eight"),
            "spec.maxReplicaCount: must be integer (keda/v2.20.2/keda.sh_scaledobjects.yaml)",
        ),
        (
            "ServiceMonitor",
            lambda d: d["spec"]["endpoints"][0].__setitem__("intervall", "15s"),
            "spec.endpoints[0]: must not contain {'intervall'} properties",
        ),
        (
            "AnalysisTemplate",
            lambda d: d["spec"]["metrics"][0].__setitem__("count", []),
            "spec.metrics[0].count",
        ),
        (
            "WorkflowTemplate",
            lambda d: d["spec"]["templates"][1]["container"].__setitem__("imagee", "x"),
            "must not contain {'imagee'} properties (argo-workflows/v3.7.18/schema.json)",
        ),
        (
            "WorkflowTemplate",
            lambda d: d["spec"]["templates"][1]["container"].__setitem__("imagee", "x"),
            "must not contain {'imagee'} properties (argo-workflows/v4.1.2/schema.json)",
        ),
        (
            "CronWorkflow",
            lambda d: d["spec"].__setitem__("concurrencyPolicy", 1),
            "spec.concurrencyPolicy: must be string",
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
    validate = compile_validator(schema)
    for port in (8080, "http"):
        validate({"port": port, "size": None})
    for port in (1.5, None, [], True):
        with pytest.raises(fastjsonschema.JsonSchemaValueException, match="port"):
            validate({"port": port})
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


def test_validators_name_the_list_item_at_fault_inside_a_reference() -> None:
    """The generated code is rewritten to build names with f-strings (see
    compile_validator): a failure inside a `$ref` in a list still names its index."""
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
    validate = compile_validator(schema)
    validate({"items": [{"size": 1}, {"size": 2}]})
    with pytest.raises(fastjsonschema.JsonSchemaValueException) as failure:
        validate({"items": [{"size": 1}, {"size": "big"}]})
    assert failure.value.name == "data.items[1].size"
