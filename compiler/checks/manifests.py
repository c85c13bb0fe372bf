"""Check rendered manifests: strict schemas, and what schemas cannot see.

Schemas catch misspelled fields and wrong types. They do not see names that
Kubernetes will refuse, label values over 63 characters, malformed quantities,
or references between objects (a Rollout's Services, an analysis template, a
ConfigMap a pod mounts, the target of an autoscaler). Those are checked here,
over each model's folder of objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from compiler.artifact import Artifact
from compiler.checks.schemas import SchemaSet, UnknownKind
from compiler.spec.types import QUANTITY

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_QUANTITY = re.compile(QUANTITY)


@dataclass(frozen=True)
class ManifestProblem:
    artifact: Artifact
    path: str  # JSON path inside the object
    message: str


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def _names_and_labels(artifact: Artifact, document: dict[str, Any]) -> list[ManifestProblem]:
    problems: list[ManifestProblem] = []
    name = document.get("metadata", {}).get("name", "")
    pattern = _DNS_1035 if document.get("kind") == "Service" else _DNS_LABEL
    if not pattern.fullmatch(name) or len(name) > 63:
        problems.append(ManifestProblem(artifact, "metadata.name", f"{name!r} is not a valid name"))
    for path, node in _walk(document):
        if path.endswith(("labels", "matchLabels")) and isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and "{{" in value:
                    continue  # an ApplicationSet template: filled in by Argo CD
                if (
                    not isinstance(value, str)
                    or len(value) > 63
                    or not _LABEL_VALUE.fullmatch(value)
                ):
                    problems.append(
                        ManifestProblem(
                            artifact, f"{path}.{key}", f"label value {value!r} is invalid"
                        )
                    )
        if path.endswith(("resources.requests", "resources.limits")) and isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
                    problems.append(
                        ManifestProblem(artifact, f"{path}.{key}", f"{value!r} is not a quantity")
                    )
    return problems


def _references(folder: list[Artifact]) -> list[ManifestProblem]:
    """References between the objects of one model in one environment."""
    present: set[tuple[str, str]] = set()
    for artifact in folder:
        if artifact.document is not None:
            present.add((artifact.document["kind"], artifact.document["metadata"]["name"]))
    problems: list[ManifestProblem] = []

    def need(artifact: Artifact, path: str, kind: str, name: Any) -> None:
        if (kind, name) not in present:
            problems.append(
                ManifestProblem(artifact, path, f"refers to {kind} {name!r}, which is not rendered")
            )

    for artifact in folder:
        document = artifact.document
        if document is None:
            continue
        for path, node in _walk(document):
            if not isinstance(node, dict):
                continue
            for field in ("canaryService", "stableService", "activeService", "previewService"):
                if field in node:
                    need(artifact, f"{path}.{field}", "Service", node[field])
            if "templateName" in node:
                need(artifact, f"{path}.templateName", "AnalysisTemplate", node["templateName"])
            if "configMap" in node and isinstance(node["configMap"], dict):
                need(artifact, f"{path}.configMap.name", "ConfigMap", node["configMap"].get("name"))
            if "serviceAccountName" in node:
                need(
                    artifact,
                    f"{path}.serviceAccountName",
                    "ServiceAccount",
                    node["serviceAccountName"],
                )
            if path.endswith("scaleTargetRef"):
                need(artifact, path, node.get("kind", ""), node.get("name"))
            if path.endswith("virtualService") and "name" in node:
                need(artifact, f"{path}.name", "VirtualService", node["name"])
    return problems


def check_manifests(artifacts: list[Artifact], schemas: SchemaSet | None) -> list[ManifestProblem]:
    problems: list[ManifestProblem] = []
    folders: dict[str, list[Artifact]] = {}
    for artifact in artifacts:
        if artifact.document is None:
            continue
        folders.setdefault(artifact.path.rsplit("/", 1)[0], []).append(artifact)
        problems.extend(_names_and_labels(artifact, artifact.document))
        if schemas is None:
            continue
        try:
            for problem in schemas.validate(artifact.document):
                problems.append(
                    ManifestProblem(artifact, problem.path, f"{problem.message} ({problem.schema})")
                )
        except UnknownKind as exc:
            problems.append(ManifestProblem(artifact, "kind", str(exc)))
    for folder in folders.values():
        problems.extend(_references(folder))
    return problems
