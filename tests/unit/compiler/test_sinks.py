"""Every sink, one rule: a hostile value written into any spec field is either refused
at its line or lands in the output as inert data.

Each payload below is aimed at one engine that evaluates text Kiln renders (Argo
Workflows and Rollouts substitution, ApplicationSet Go templates, Kubernetes `$(VAR)`
expansion, YAML structure, PromQL, Kiln's own pipeline tokens, Markdown, GitHub
workflow commands). Every payload goes into every field; the test then looks for the
payload live in every rendered file.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from compiler.api import build
from compiler.diagnostics import Diagnostic, format_github
from compiler.plan.render import markdown_code, markdown_text
from tests.errors.test_errors import BASE, ONNX, ONNX_IN_TREE

MARK = "pwn"
PAYLOADS = [
    "{{workflow.parameters.pwn}}",
    '{{=sprig.env("pwn")}}',
    "{{args.pwn}}",
    "{{ .pwn }}",
    "{{- .pwn -}}",
    "{{`{{`}}.pwn{{`}}`}}",
    "{run:pwn}",
    "x/$(pwn).parquet",
    "$$$(pwn)",
    "a\n---\nkind: ClusterRole\nmetadata: {name: pwn}",
    '"} or vector(1) or up{pwn="',
    "<script>pwn()</script>",
    "[x](javascript:pwn)",
    "%0A::error::pwn",
    "x\n::error file=a::pwn",
]

# (spec file, path of a string value): every field a person writes free text into.
VALUES = [
    ("project.yaml", ("metadata", "description")),
    ("project.yaml", ("spec", "git", "revision")),
    ("project.yaml", ("spec", "git", "path")),
    ("project.yaml", ("spec", "git", "repo")),
    ("project.yaml", ("spec", "storage", "data")),
    ("project.yaml", ("spec", "environments", 1, "prometheus_url")),
    ("project.yaml", ("spec", "environments", 1, "gpu", "resource")),
    ("project.yaml", ("spec", "environments", 1, "gpu", "node_selector", "pool")),
    ("project.yaml", ("spec", "environments", 1, "monitoring_labels", "release")),
    ("project.yaml", ("spec", "alert_routes", 0, "alertmanager", "url")),
    ("models/car-loan-default.yaml", ("metadata", "owner")),
    ("models/car-loan-default.yaml", ("spec", "versions", 0, "description")),
    ("models/car-loan-default.yaml", ("spec", "training", "command", 0)),
    ("models/car-loan-default.yaml", ("spec", "training", "args", 0)),
    ("models/car-loan-default.yaml", ("spec", "training", "data", "uri")),
    ("models/car-loan-default.yaml", ("spec", "monitoring", "reference", "uri")),
    ("models/car-loan-default.yaml", ("spec", "monitoring", "analysis", "uri")),
]
# (spec file, path of a mapping): fields whose keys a person writes.
KEYS = [
    ("project.yaml", ("spec", "environments", 1, "gpu", "node_selector")),
    ("project.yaml", ("spec", "environments", 1, "monitoring_labels")),
    ("models/car-loan-default.yaml", ("metadata", "labels")),
    ("models/car-loan-default.yaml", ("spec", "versions", 0, "metrics")),
]
# A payload is live when an engine would still see it in the output.
LIVE_TEMPLATE = re.compile(r"\{\{[^}]*pwn")  # Argo, Rollouts and Go template actions
LIVE_EXPANSION = re.compile(r"(?<!\$)(?:\$\$)*\$\(pwn")  # an odd run of `$` before `(`
PROMQL_FIELDS = {"query", "expr"}
CONTAINER_TEXT = {"command", "args", "env"}  # where Kubernetes expands $(VAR)


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(BASE, root)
    shutil.copytree(ONNX, root / ONNX_IN_TREE)
    return root / "specs"


def _node(data: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        if isinstance(data, dict) and step not in data:
            data[step] = {} if not isinstance(step, int) else []
        data = data[step]
    return data


def _inject(specs: Path, file: str, path: tuple[str | int, ...], payload: str, key: bool) -> None:
    spec = specs / file
    data = yaml.safe_load(spec.read_text())
    if file.startswith("models/"):
        data["spec"]["training"].setdefault("args", [])
    if key:
        _node(data, path)[payload] = 0.5 if path[-1] == "metrics" else "x"
    else:
        holder = _node(data, path[:-1])
        if isinstance(holder, list):
            holder.insert(path[-1], payload)  # type: ignore[arg-type]
        else:
            holder[path[-1]] = payload
    spec.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _strings(node: Any, fields: tuple[str, ...] = ()) -> Iterator[tuple[str, str, bool]]:
    """(field it stands under, text, is a key) for every string of a rendered object;
    an environment variable's value stands under `env`."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (fields or ("",))[-1], str(key), True
            inside = ("env",) if fields[-1:] == ("env",) and key == "value" else (*fields, str(key))
            yield from _strings(value, inside)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, fields)
    elif isinstance(node, str):
        yield (fields or ("",))[-1], node, False


def _assert_inert(path: str, text: str) -> None:
    assert not LIVE_TEMPLATE.search(text), f"{path}: a template action reaches the output"
    for document in yaml.safe_load_all(text) if path.endswith(".yaml") else ():
        if not isinstance(document, dict):
            continue
        assert document.get("kind") != "ClusterRole", f"{path}: a second object was made"
        for field, value, key in _strings(document):
            assert not (key and MARK in value), f"{path}: a key {value!r} came from a spec"
            if field in CONTAINER_TEXT:
                assert not LIVE_EXPANSION.search(value), f"{path}: $(...) expands in {field}"
            if field in PROMQL_FIELDS:
                assert "vector(1)" not in value, f"{path}: PromQL from a spec in {field}"


def _check(specs: Path, file: str, path: tuple[str | int, ...], key: bool) -> None:
    result = build(specs)
    errors = [d for d in result.diagnostics if d.is_error]
    if errors:
        document = result.resolution.documents[f"specs/{file}"]
        line, _ = document.locate(path, key=key)
        assert any(d.file == f"specs/{file}" and d.line == line for d in errors), errors
        return
    artifacts = [*result.artifacts, *(result.gitops or [])]
    assert artifacts
    for artifact in artifacts:
        _assert_inert(artifact.path, artifact.data.decode("utf-8"))


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize(("file", "path"), VALUES, ids=[".".join(map(str, p)) for _, p in VALUES])
def test_a_hostile_value_is_refused_or_inert(
    tmp_path: Path, file: str, path: tuple[str | int, ...], payload: str
) -> None:
    specs = _tree(tmp_path)
    _inject(specs, file, path, payload, key=False)
    _check(specs, file, path, key=False)


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize(("file", "path"), KEYS, ids=[".".join(map(str, p)) for _, p in KEYS])
def test_a_hostile_key_is_refused_or_inert(
    tmp_path: Path, file: str, path: tuple[str | int, ...], payload: str
) -> None:
    specs = _tree(tmp_path)
    _inject(specs, file, path, payload, key=True)
    _check(specs, file, (*path, payload), key=True)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_shows_a_payload_as_text(payload: str) -> None:
    text, code = markdown_text(payload), markdown_code(payload)
    assert "\n" not in text and "<" not in text and not re.search(r"(?<!\\)[\[\]]", text)
    # A code span shows its content verbatim; it must not end early.
    assert "\n" not in code and code.count("`") == 2 and code[0] == code[-1] == "`"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_github_annotation_is_one_command_whatever_it_quotes(payload: str) -> None:
    annotation = format_github(Diagnostic(payload, 1, 1, "KILN1105", payload, hint=payload))
    # A workflow command starts a line: one line cannot smuggle in a second command.
    assert "\n" not in annotation and "\r" not in annotation
    properties = annotation.removeprefix("::error ").split("::", 1)[0]
    assert properties.count(",") == 3 and properties.count("=") >= 4
    assert "%0A" not in payload or "%250A" in annotation  # `%` is escaped too
