"""Strict schema validation of generated manifests against the real schemas.

Core Kubernetes kinds use the strict JSON Schemas bundled in the
`kubernetes-validate` package, for the Kubernetes version the Project names.
Custom resources use the `openAPIV3Schema` of their CRDs, read from a folder the
user names (`--schemas DIR` or `KILN_SCHEMAS`): the official CRDs, or CRDs
exported from their own cluster. CRD schemas are translated to JSON Schema
(int-or-string, nullable, preserve-unknown-fields) and made strict: an object
that lists its properties rejects any other. Validators are built once per
process with jsonschema-rs (JSON Schema 2020-12, the draft the Kubernetes
schemas declare, with formats asserted).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from compiler.cache import cached, key

SCHEMAS_ENV = "KILN_SCHEMAS"
Validator = jsonschema_rs.Validator


@dataclass(frozen=True)
class SchemaProblem:
    schema: str  # which schema said no, e.g. "argo-rollouts/v1.9.1/rollout-crd.yaml"
    path: str  # JSON path in the document, e.g. "spec.template.spec.containers[0].image"
    message: str


class UnknownKind(Exception):
    pass


def _collect_refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value.rsplit("/", 1)[1])
            else:
                _collect_refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _collect_refs(item, found)


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                v.replace("/api/_definitions.json#/$defs/", "#/$defs/")
                if k == "$ref" and isinstance(v, str)
                else _rewrite_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def _json_path(path: list[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(document)"


MAX_MESSAGE = 200  # a wrong value can be a whole object, which the message quotes


def compile_validator(schema: dict[str, Any]) -> Validator:
    """A strict validator: JSON Schema 2020-12, formats asserted, no remote `$ref`."""
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, offline=True)


def _run(validator: Validator, document: Any, schema: str) -> list[SchemaProblem]:
    """Every way `document` breaks the schema, sorted by path, so the report is the
    same whatever order the validator found them in."""
    if validator.is_valid(document):  # the common case, and the cheapest call
        return []
    found: set[SchemaProblem] = set()
    for error in validator.iter_errors(document):
        message = error.message
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
        found.add(SchemaProblem(schema, _json_path(error.instance_path), message))
    return sorted(found, key=lambda p: (p.path, p.message))


# --- core kinds: kubernetes-validate -------------------------------------------------


def _core_folder(kubernetes_version: str) -> Path:
    import kubernetes_validate

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    folder = root / f"v{kubernetes_version}.0-local-strict"
    if not folder.is_dir():
        known = sorted(p.name.split("-")[0][1:] for p in root.glob("v*-local-strict"))
        raise UnknownKind(
            f"kubernetes-validate has no schemas for Kubernetes {kubernetes_version}; "
            f"it has {', '.join(known)}"
        )
    return folder


@cache
def _core_definitions(kubernetes_version: str) -> dict[str, Any]:
    path = _core_folder(kubernetes_version) / "_definitions.json"
    definitions: dict[str, Any] = _rewrite_refs(json.loads(path.read_text("utf-8"))["$defs"])
    return definitions


def _core_file(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    prefix = group.split(".")[0]
    return f"{kind.lower()}-{prefix}-{version}.json" if group else f"{kind.lower()}-{version}.json"


@cache
def core_validator(kubernetes_version: str, api_version: str, kind: str) -> Validator:
    path = _core_folder(kubernetes_version) / _core_file(api_version, kind)
    if not path.is_file():
        raise UnknownKind(f"no schema for {api_version} {kind} in Kubernetes {kubernetes_version}")
    schema = _rewrite_refs(json.loads(path.read_text("utf-8")))
    schema.pop("$schema", None)
    schema.pop("$id", None)
    definitions = _core_definitions(kubernetes_version)
    # Hand the validator only the definitions this kind reaches, not all 800 of them.
    needed: set[str] = set()
    _collect_refs(schema, needed)
    pending = list(needed)
    while pending:
        found: set[str] = set()
        _collect_refs(definitions[pending.pop()], found)
        for name in found - needed:
            needed.add(name)
            pending.append(name)
    schema["$defs"] = {name: definitions[name] for name in sorted(needed)}
    return compile_validator(schema)


# --- custom resources: CRD folders ---------------------------------------------------


def _go_regex(pattern: str) -> str:
    # Go allows inline flags mid-pattern (`^(?i)(a|b)$`); Python wants them first.
    flags = "".join(re.findall(r"\(\?([a-z]+)\)", pattern))
    if not flags:
        return pattern
    return f"(?{flags})" + re.sub(r"\(\?[a-z]+\)", "", pattern)


_INT_OR_STRING_BRANCHES = [{"type": "integer"}, {"type": "string"}]


def crd_to_json_schema(node: Any, root: bool = True) -> Any:
    """Translate a CRD openAPIV3Schema into a strict JSON Schema."""
    if isinstance(node, list):
        return [crd_to_json_schema(item, root=False) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {
        k: crd_to_json_schema(v, root=False)
        if k not in ("properties", "enum", "default", "example")
        else v
        for k, v in node.items()
        if not k.startswith("x-kubernetes-") and k != "nullable"
    }
    if "properties" in node:
        schema["properties"] = {
            name: crd_to_json_schema(child, root=False)
            for name, child in node["properties"].items()
        }
        if root:
            # The API server checks the envelope itself; some CRDs (Istio's) leave it out.
            schema["properties"].setdefault("apiVersion", {"type": "string"})
            schema["properties"].setdefault("kind", {"type": "string"})
            schema["properties"].setdefault("metadata", {"type": "object"})
    if node.get("x-kubernetes-int-or-string"):
        # One type check, not `anyOf`: the same meaning, and one error message instead
        # of one per branch when the value is neither.
        if schema.get("anyOf") == _INT_OR_STRING_BRANCHES:
            del schema["anyOf"]
        schema["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in schema:
        kinds = schema["type"]
        schema["type"] = [*kinds, "null"] if isinstance(kinds, list) else [kinds, "null"]
    if "pattern" in schema:
        schema["pattern"] = _go_regex(schema["pattern"])
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in node and "additionalProperties" not in node and not preserve:
        schema["additionalProperties"] = False
    return schema


@dataclass(frozen=True)
class CrdSchema:
    source: str  # file, relative to the schema folder
    schema: dict[str, Any]
    ready: bool = False  # already a strict JSON Schema (bundles), not a CRD schema


def _documents(path: Path, raw: bytes) -> Iterator[Any]:
    from ruamel.yaml import YAML

    text = raw.decode("utf-8")
    if path.suffix == ".json":
        yield json.loads(text)
        return
    yield from YAML(typ="safe").load_all(text)


def strict_json_schema(node: Any) -> Any:
    """Reject unknown fields in every object schema that lists its properties."""
    if isinstance(node, list):
        return [strict_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {
        k: (v if k in ("enum", "const", "default", "example") else strict_json_schema(v))
        for k, v in node.items()
        if not k.startswith("x-")
    }
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    return schema


def _bundle_entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Kinds of a JSON-schema bundle with `definitions` (Argo Workflows' schema.json)."""
    definitions = document.get("definitions", {})
    entries = []
    for name, definition in sorted(definitions.items()):
        properties = definition.get("properties", {}) if isinstance(definition, dict) else {}
        api_version = properties.get("apiVersion", {}).get("const")
        kind = properties.get("kind", {}).get("const")
        if not (api_version and kind):
            continue
        needed = {name}
        pending = [name]
        while pending:
            found: set[str] = set()
            _collect_refs(definitions[pending.pop()], found)
            for ref in found - needed:
                needed.add(ref)
                pending.append(ref)
        schema = {
            "$ref": f"#/definitions/{name}",
            "definitions": {ref: strict_json_schema(definitions[ref]) for ref in sorted(needed)},
        }
        entries.append({"apiVersion": api_version, "kind": kind, "schema": schema, "strict": True})
    return entries


def _index(path: Path, raw: bytes) -> bytes:
    """The CRD schemas in one file, as JSON: [{apiVersion, kind, schema}]."""
    found = []
    for document in _documents(path, raw):
        if isinstance(document, dict) and "definitions" in document:
            found.extend(_bundle_entries(document))
            continue
        if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
            continue
        spec = document["spec"]
        for version in spec.get("versions", []):
            schema = version.get("schema", {}).get("openAPIV3Schema")
            if schema is not None:
                api_version = f"{spec['group']}/{version['name']}"
                found.append(
                    {"apiVersion": api_version, "kind": spec["names"]["kind"], "schema": schema}
                )
    return json.dumps(found, sort_keys=True).encode()


class CrdIndex:
    """CRD schemas found under a folder, parsed only when a kind is asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files = sorted(
            p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
        )
        self._parsed: set[Path] = set()
        self._schemas: dict[tuple[str, str], list[CrdSchema]] = {}
        self._validators: dict[tuple[str, str], list[tuple[str, Validator]]] = {}

    def _parse(self, path: Path) -> None:
        self._parsed.add(path)
        source = path.relative_to(self.folder).as_posix()
        raw = path.read_bytes()
        found = json.loads(cached("crds", key("crd-index-2", raw), lambda: _index(path, raw)))
        for entry in found:
            self._schemas.setdefault((entry["apiVersion"], entry["kind"]), []).append(
                CrdSchema(source, entry["schema"], entry.get("strict", False))
            )

    def schemas(self, api_version: str, kind: str) -> list[CrdSchema]:
        key = (api_version, kind)
        marker = re.compile(
            rf'^\s*kind: {re.escape(kind)}\s*$|"const": "{re.escape(kind)}"', re.MULTILINE
        )
        for path in self._files:
            if path not in self._parsed and marker.search(path.read_text("utf-8")):
                self._parse(path)
        return self._schemas.get(key, [])

    def validators(self, api_version: str, kind: str) -> list[tuple[str, Validator]]:
        key = (api_version, kind)
        if key not in self._validators:
            self._validators[key] = [
                (s.source, compile_validator(s.schema if s.ready else crd_to_json_schema(s.schema)))
                for s in self.schemas(api_version, kind)
            ]
        return self._validators[key]


@cache
def crd_index(folder: Path) -> CrdIndex:
    return CrdIndex(folder)


def schema_folder(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    from_env = os.environ.get(SCHEMAS_ENV)
    return Path(from_env) if from_env else None


class SchemaSet:
    """Where to find the schema of each kind; validates documents against all of them."""

    def __init__(self, kubernetes_version: str, crd_folder: Path | None) -> None:
        self.kubernetes_version = kubernetes_version
        self.crds = crd_index(crd_folder.resolve()) if crd_folder is not None else None
        self.unchecked: set[str] = set()  # custom kinds seen without a CRD folder

    def check_version(self) -> None:
        """Raise UnknownKind when there are no core schemas for this Kubernetes version."""
        _core_folder(self.kubernetes_version)

    def is_core(self, api_version: str) -> bool:
        group = api_version.rpartition("/")[0]
        return group == "" or "." not in group or group.endswith(".k8s.io")

    def validate(self, document: dict[str, Any]) -> list[SchemaProblem]:
        api_version, kind = document.get("apiVersion", ""), document.get("kind", "")
        if self.is_core(api_version):
            validator = core_validator(self.kubernetes_version, api_version, kind)
            label = f"kubernetes-validate v{self.kubernetes_version} strict"
            return _run(validator, document, label)
        if self.crds is None:
            self.unchecked.add(f"{api_version} {kind}")
            return []
        validators = self.crds.validators(api_version, kind)
        if not validators:
            raise UnknownKind(f"no CRD for {api_version} {kind} under {self.crds.folder.name}")
        return [p for source, v in validators for p in _run(v, document, source)]
