"""A served model's pods admit only its clients and its Prometheus, and Triton keeps the
APIs no client needs (model repository, logging, trace, shared memory) behind a key no
client is told (docs/serving.md, "Network policy and Triton's restricted APIs")."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from compiler.api import build
from compiler.artifact import Artifact
from compiler.checks.schemas import SchemaSet
from compiler.targets.serving import RESTRICTED_APIS
from tests.conftest import PROJECT, SpecFiles, WriteTree

STAGING = "    - {name: staging, namespace: ml-staging}\n"
NAMESPACE_NAME = "kubernetes.io/metadata.name"
# Kubernetes expands `$(NAME)` in args, with a single `$` before it, from the container's env.
EXPANDED = re.compile(r"(?<!\$)(?:\$\$)*\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def artifacts(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, staging: str = STAGING
) -> list[Artifact]:
    files = spec_files()
    files["project.yaml"] = PROJECT.replace(STAGING, staging)
    result = build(write_tree(tmp_path / "specs", files), None)
    assert result.ok, [d.text() for d in result.diagnostics]
    return result.artifacts


def documents(found: list[Artifact], kind: str, model: str = "alpha") -> list[dict[str, Any]]:
    return [
        a.document
        for a in found
        if a.document and a.document["kind"] == kind and f"/{model}/" in f"/{a.path}"
    ]


def only(found: list[Artifact], kind: str) -> dict[str, Any]:
    [document] = documents(found, kind)
    return document


def admitted(policy: dict[str, Any]) -> dict[int, list[str]]:
    """Port -> namespaces admitted to it, read off the policy's ingress rules."""
    ports: dict[int, list[str]] = {}
    for rule in policy["spec"]["ingress"]:
        [peer] = rule["from"]
        [expression] = peer["namespaceSelector"]["matchExpressions"]
        assert (expression["key"], expression["operator"]) == (NAMESPACE_NAME, "In")
        assert set(peer) == {"namespaceSelector"}  # no ipBlock or open pod selector
        for port in rule["ports"]:
            assert port["protocol"] == "TCP"
            ports.setdefault(port["port"], []).extend(expression["values"])
    return ports


def triton(found: list[Artifact]) -> dict[str, Any]:
    container: dict[str, Any] = only(found, "Rollout")["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "triton"
    return container


def test_by_default_only_the_own_namespace_calls_and_only_monitoring_scrapes(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    found = artifacts(tmp_path, spec_files, write_tree)
    policy = only(found, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == "ml-staging"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert admitted(policy) == {8000: ["ml-staging"], 8001: ["ml-staging"], 8002: ["monitoring"]}
    # Every pod of the model, stable and canary alike, is selected: each Service's selector.
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for service in documents(found, "Service"):
        assert service["spec"]["selector"] == selector
    assert only(found, "Rollout")["spec"]["selector"]["matchLabels"] == selector


def test_declared_clients_and_monitoring_namespace_are_admitted(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    staging = (
        "    - name: staging\n"
        "      namespace: ml-staging\n"
        "      network:\n"
        "        clients: [web-apps, batch-scoring, ml-staging, web-apps]\n"
        "        monitoring_namespace: observability\n"
    )
    policy = only(artifacts(tmp_path, spec_files, write_tree, staging), "NetworkPolicy")
    clients = ["ml-staging", "batch-scoring", "web-apps"]  # its own first, once each
    assert admitted(policy) == {8000: clients, 8001: clients, 8002: ["observability"]}


def test_a_client_that_is_no_namespace_name_is_refused_at_its_line(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    files = spec_files()
    staging = "    - name: staging\n      network: {clients: [Web_Apps]}\n"
    files["project.yaml"] = PROJECT.replace(STAGING, staging)
    result = build(write_tree(tmp_path / "specs", files), None)
    [error] = [d for d in result.diagnostics if d.is_error]
    assert (error.file, error.line, error.code) == ("specs/project.yaml", 11, "KILN1201")


def test_the_policy_is_valid_under_the_strict_schema_and_the_check_bites(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    policy = only(artifacts(tmp_path, spec_files, write_tree), "NetworkPolicy")
    schemas = SchemaSet("1.33", None)
    assert schemas.validate(policy) == []
    misspelt = copy.deepcopy(policy)
    misspelt["spec"]["ingress"][0]["sources"] = misspelt["spec"]["ingress"][0].pop("from")
    assert schemas.validate(misspelt)


def test_the_local_environment_gets_no_policy(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    found = artifacts(tmp_path, spec_files, write_tree)
    assert [a.path for a in found if a.kind and a.kind[1] == "NetworkPolicy"] == [
        "staging/alpha/networkpolicy-alpha.yaml",
        "staging/beta/networkpolicy-beta.yaml",
    ]


def restrictions(container: dict[str, Any]) -> dict[str, tuple[set[str], str, str]]:
    """Flag -> (APIs, header, value) of Triton's restricted-API options."""
    found = {}
    for arg in container["args"]:
        flag, _, setting = arg.partition("=")
        if flag in ("--http-restricted-api", "--grpc-restricted-protocol"):
            apis, _, header_value = setting.partition(":")
            header, _, value = header_value.partition("=")
            found[flag] = (set(apis.split(",")), header, value)
    return found


def test_triton_restricts_the_apis_no_client_needs_on_both_protocols(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    container = triton(artifacts(tmp_path, spec_files, write_tree))
    found = restrictions(container)
    assert set(found) == {"--http-restricted-api", "--grpc-restricted-protocol"}
    for apis, header, value in found.values():
        assert {"model-repository", "logging", "trace"} <= apis == set(RESTRICTED_APIS)
        # What the smoke test, the probes and clients use stays open.
        assert not apis & {"health", "metadata", "inference", "model-config"}
        assert header and value
        # The value is an env reference Kubernetes expands, never a key in the output.
        assert EXPANDED.fullmatch(value)


def key_source(container: dict[str, Any], arg_value: str) -> dict[str, Any]:
    match = EXPANDED.fullmatch(arg_value)
    assert match, arg_value
    [entry] = [e for e in container["env"] if e["name"] == match.group(1)]
    source: dict[str, Any] = entry["valueFrom"]
    return source


def test_the_key_is_the_pods_uid_unless_a_secret_is_named(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    container = triton(artifacts(tmp_path / "a", spec_files, write_tree))
    [(_, _, value), *_] = restrictions(container).values()
    assert key_source(container, value) == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.uid"}
    }
    staging = (
        "    - name: staging\n"
        "      namespace: ml-staging\n"
        "      network: {admin_key_secret: {name: triton-admin, key: header-value}}\n"
    )
    container = triton(artifacts(tmp_path / "b", spec_files, write_tree, staging))
    values = {value for _, _, value in restrictions(container).values()}
    assert len(values) == 1
    assert key_source(container, values.pop()) == {
        "secretKeyRef": {"name": "triton-admin", "key": "header-value"}
    }


@pytest.mark.parametrize("key", ["../token", ".."])
def test_a_traversing_admin_key_is_refused(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, key: str
) -> None:
    files = spec_files()
    staging = (
        "    - name: staging\n"
        f"      network: {{admin_key_secret: {{name: triton-admin, key: '{key}'}}}}\n"
    )
    files["project.yaml"] = PROJECT.replace(STAGING, staging)
    result = build(write_tree(tmp_path / "specs", files), None)
    assert [d.code for d in result.diagnostics if d.is_error] == ["KILN1105"]


def warnings(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, environments: str
) -> list[tuple[str, int]]:
    """(code, line) of each warning of a tree whose Project lists `environments`."""
    files = spec_files()
    files["project.yaml"] = PROJECT.replace(
        "    - {name: local, kind: local}\n" + STAGING, environments
    )
    result = build(write_tree(tmp_path / "specs", files), None)
    assert result.ok, [d.text() for d in result.diagnostics]
    return [(d.code, d.line) for d in result.diagnostics if not d.is_error]


ELSEWHERE = "prometheus_url: http://prometheus.observability.svc:9090"


def test_a_prometheus_in_another_namespace_than_may_scrape_is_a_warning(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    # Line 9 holds the environment; the finding stands at the field that disagrees.
    at_url = f"    - {{name: staging, {ELSEWHERE}}}\n"
    assert warnings(tmp_path / "a", spec_files, write_tree, at_url) == [("KILN1620", 9)]
    declared = (
        f"    - name: staging\n      {ELSEWHERE}\n"
        "      network: {monitoring_namespace: metrics}\n"
    )
    assert warnings(tmp_path / "b", spec_files, write_tree, declared) == [("KILN1620", 11)]
    agreed = (
        f"    - {{name: staging, {ELSEWHERE}, network: {{monitoring_namespace: observability}}}}\n"
    )
    assert warnings(tmp_path / "c", spec_files, write_tree, agreed) == []
    # An address that names no in-cluster Service says nothing of where Prometheus runs.
    outside = "    - {name: staging, prometheus_url: https://prometheus.example.com}\n"
    assert warnings(tmp_path / "d", spec_files, write_tree, outside) == []


def test_network_in_the_local_environment_is_a_warning(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    local = "    - {name: local, kind: local, network: {clients: [web]}}\n" + STAGING
    assert warnings(tmp_path, spec_files, write_tree, local) == [("KILN1621", 9)]
