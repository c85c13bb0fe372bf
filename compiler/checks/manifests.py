"""Check rendered manifests: strict schemas, and what schemas cannot see.

Schemas catch misspelled fields and wrong types. They do not see names that
Kubernetes will refuse, label values over 63 characters, malformed quantities,
or references between objects (a Rollout's Services, an analysis template, a
ConfigMap a pod mounts, the target of an autoscaler). Those are checked here,
over each model's folder of objects.
"""

from __future__ import annotations

import re
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


Path = tuple[str | int, ...]
_SERVICE_FIELDS = ("canaryService", "stableService", "activeService", "previewService")


def _text(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass
class _Scan:
    """What one pass over a document finds: labels, resources and references.

    Each finding keeps the mapping that holds it and its key there, not a path: a
    path is worked out (by `_path_to`) only for what turns out to be a problem.
    """

    labels: list[tuple[dict[str, Any], str]]  # holder, key
    resources: list[tuple[dict[str, Any], str]]
    references: list[tuple[dict[str, Any], str, str, Any]]  # holder, key, kind, name


def _scan(document: dict[str, Any]) -> _Scan:
    scan = _Scan([], [], [])
    _scan_mapping(document, "", scan)
    return scan


# Keys whose value the scan records; every other key only leads deeper.
_OBJECT_KEYS = frozenset(
    ["labels", "matchLabels", "requests", "limits", "configMap", "scaleTargetRef", "virtualService"]
)
_NAME_KEYS = {**dict.fromkeys(_SERVICE_FIELDS, "Service"), "templateName": "AnalysisTemplate"}
_NAME_KEYS["serviceAccountName"] = "ServiceAccount"


def _scan_mapping(node: dict[str, Any], own_key: str | int, scan: _Scan) -> None:
    for key, value in node.items():
        kind = type(value)
        if kind is dict:
            if key in _OBJECT_KEYS:
                _record_object(node, own_key, key, value, scan)
            _scan_mapping(value, key, scan)
        elif kind is list:
            _scan_list(value, scan)
        elif key in _NAME_KEYS:
            scan.references.append((node, key, _NAME_KEYS[key], value))


def _record_object(
    holder: dict[str, Any], own_key: str | int, key: str, value: dict[str, Any], scan: _Scan
) -> None:
    if key in ("labels", "matchLabels"):
        scan.labels.append((holder, key))
    elif key in ("requests", "limits"):
        if own_key == "resources":
            scan.resources.append((holder, key))
    elif key == "configMap":
        scan.references.append((value, "name", "ConfigMap", value.get("name")))
    elif key == "scaleTargetRef":
        scan.references.append((holder, key, value.get("kind", ""), value.get("name")))
    elif "name" in value:  # virtualService
        scan.references.append((value, "name", "VirtualService", value["name"]))


def _scan_list(node: list[Any], scan: _Scan) -> None:
    for index, item in enumerate(node):
        kind = type(item)
        if kind is dict:
            _scan_mapping(item, index, scan)
        elif kind is list:
            _scan_list(item, scan)


def _path_to(node: Any, target: dict[str, Any]) -> Path | None:
    """The path from `node` to the mapping `target` (that very object), if it is inside."""
    if node is target:
        return ()
    children = node.items() if type(node) is dict else enumerate(node) if type(node) is list else ()
    for key, child in children:
        if type(child) in (dict, list):
            found = _path_to(child, target)
            if found is not None:
                return (key, *found)
    return None


def _where(document: dict[str, Any], holder: dict[str, Any], *keys: str) -> str:
    return _text((*(_path_to(document, holder) or ()), *keys))


# Label values repeat across every object of a model and every model: each is checked once.
_GOOD_LABEL_VALUES: set[str] = set()


def _names_and_labels(
    artifact: Artifact, document: dict[str, Any], scan: _Scan
) -> list[ManifestProblem]:
    problems: list[ManifestProblem] = []
    name = document.get("metadata", {}).get("name", "")
    pattern = _DNS_1035 if document.get("kind") == "Service" else _DNS_LABEL
    if not pattern.fullmatch(name) or len(name) > 63:
        problems.append(ManifestProblem(artifact, "metadata.name", f"{name!r} is not a valid name"))
    for holder, key in scan.labels:
        for label, value in holder[key].items():
            if type(value) is str:
                if value in _GOOD_LABEL_VALUES or "{{" in value:
                    continue  # checked before, or an ApplicationSet template (Argo CD fills it)
                if len(value) <= 63 and _LABEL_VALUE.fullmatch(value):
                    if len(_GOOD_LABEL_VALUES) < 100_000:
                        _GOOD_LABEL_VALUES.add(value)
                    continue
            where = _where(document, holder, key, label)
            problems.append(ManifestProblem(artifact, where, f"label value {value!r} is invalid"))
    for holder, key in scan.resources:
        for resource, value in holder[key].items():
            if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
                where = _where(document, holder, key, resource)
                problems.append(ManifestProblem(artifact, where, f"{value!r} is not a quantity"))
    return problems


def _references(folder: list[tuple[Artifact, _Scan]]) -> list[ManifestProblem]:
    """References between the objects of one model in one environment."""
    present = {
        (a.document["kind"], a.document["metadata"]["name"]) for a, _ in folder if a.document
    }
    return [
        ManifestProblem(
            artifact,
            _where(artifact.document or {}, holder, key),
            f"refers to {kind} {name!r}, which is not rendered",
        )
        for artifact, scan in folder
        for holder, key, kind, name in scan.references
        if (kind, name) not in present
    ]


def check_manifests(artifacts: list[Artifact], schemas: SchemaSet | None) -> list[ManifestProblem]:
    problems: list[ManifestProblem] = []
    folders: dict[str, list[tuple[Artifact, _Scan]]] = {}
    for artifact in artifacts:
        document = artifact.document
        if document is None:
            continue
        scan = _scan(document)
        folders.setdefault(artifact.path.rsplit("/", 1)[0], []).append((artifact, scan))
        problems.extend(_names_and_labels(artifact, document, scan))
        if schemas is None:
            continue
        try:
            for problem in schemas.validate(document):
                problems.append(
                    ManifestProblem(artifact, problem.path, f"{problem.message} ({problem.schema})")
                )
        except UnknownKind as exc:
            problems.append(ManifestProblem(artifact, "kind", str(exc)))
    for folder in folders.values():
        problems.extend(_references(folder))
    return problems
