"""The generated docs are current and agree with the JSON Schema and the code.

- docs/spec.md and docs/errors.md equal what `python -m compiler.docs` produces;
- every property path of each kind's JSON Schema is in the spec reference, and
  every path of the reference is in the schema (with the same required fields and
  the same choices);
- every code in compiler/codes.py is documented, and every KILNxxxx code used
  under compiler/ is in compiler/codes.py.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compiler import docs
from compiler.codes import CODES, RETIRED
from compiler.editor_schema import kind_schema
from compiler.spec.documents import KINDS
from compiler.spec.model import OVERRIDABLE
from tests.tools import REPO_ROOT

ROOT = REPO_ROOT
DOCS = ROOT / "docs"
ROW = re.compile(r"^\| `(?P<path>[^`]+)` \| (?P<type>.*?) \| (?P<default>.*?) \| (?P<about>.*) \|$")


# ---------------------------------------------------------------- (a) up to date


@pytest.mark.parametrize("name", sorted(docs.GENERATORS))
def test_committed_docs_equal_the_generator(name: str) -> None:
    path = DOCS / name
    wanted = docs.expected(DOCS)[path]
    assert path.read_bytes() == wanted.encode("utf-8"), (
        f"docs/{name} is out of date: run `python -m compiler.docs`"
    )


def test_generation_is_deterministic() -> None:
    assert docs.spec_reference() == docs.spec_reference()
    assert docs.errors_reference() == docs.errors_reference()


@pytest.mark.parametrize("name", sorted(docs.GENERATORS))
def test_markers_appear_once(name: str) -> None:
    text = (DOCS / name).read_text(encoding="utf-8")
    assert text.count(docs.BEGIN) == 1
    assert text.count(docs.END) == 1
    assert text.index(docs.BEGIN) < text.index(docs.END)


def test_check_reports_stale_docs_and_writing_keeps_hand_written_parts(tmp_path: Path) -> None:
    for name in docs.GENERATORS:
        shutil.copy(DOCS / name, tmp_path / name)
    assert docs.main(["--docs", str(tmp_path)]) == 0
    assert docs.main(["--check", "--docs", str(tmp_path)]) == 0

    spec = tmp_path / "spec.md"
    stale = spec.read_text(encoding="utf-8").replace("`spec.serving.version`", "`spec.serve`")
    stale = stale.replace("# The spec language", "# The spec language, edited by hand", 1)
    spec.write_text(stale, encoding="utf-8")
    assert docs.main(["--check", "--docs", str(tmp_path)]) == 1
    assert spec.read_text(encoding="utf-8") == stale  # --check changes nothing

    assert docs.main(["--docs", str(tmp_path)]) == 0
    regenerated = spec.read_text(encoding="utf-8")
    assert "`spec.serve`" not in regenerated
    assert "# The spec language, edited by hand" in regenerated
    assert docs.main(["--check", "--docs", str(tmp_path)]) == 0


def test_missing_markers_are_a_usage_error(tmp_path: Path) -> None:
    for name in docs.GENERATORS:
        (tmp_path / name).write_text("# hand-written, no markers\n", encoding="utf-8")
    assert docs.main(["--check", "--docs", str(tmp_path)]) == 2


# ---------------------------------------------------------------- (b) schema agreement


def _generated_part(name: str) -> str:
    text = (DOCS / name).read_text(encoding="utf-8")
    return text[text.index(docs.BEGIN) : text.index(docs.END)]


def _reference_rows() -> dict[str, dict[str, dict[str, str]]]:
    """kind -> path -> row cells, from the generated part of docs/spec.md."""
    rows: dict[str, dict[str, dict[str, str]]] = {}
    kind: str | None = None
    for line in _generated_part("spec.md").splitlines():
        heading = re.fullmatch(r"## (\w+)", line)
        if heading:
            kind = heading[1] if heading[1] in KINDS else None
            continue
        match = ROW.match(line)
        if match and kind is not None:
            assert match["path"] not in rows.setdefault(kind, {}), f"{kind}: {match['path']} twice"
            rows[kind][match["path"]] = match.groupdict()
    return rows


class _SchemaPaths:
    """Every property path of a JSON Schema, written the way the reference writes it."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = schema.get("$defs", {})
        self.paths: set[str] = set()
        self.required: set[str] = set()
        self.choices: dict[str, set[str]] = {}
        self._walk(schema, "")

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/$defs/"), f"unexpected $ref {ref}"
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**self.defs[ref.removeprefix("#/$defs/")], **siblings}
        return node

    def _alternatives(self, node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        node = self._resolve(node)
        branches = [*node.get("anyOf", []), *node.get("oneOf", []), *node.get("allOf", [])]
        if not branches:
            yield node
        for branch in branches:
            yield from self._alternatives(branch)

    def _walk(self, node: dict[str, Any], path: str) -> None:
        assert path.count(".") < 30, f"schema recursion at {path}"
        for branch in self._alternatives(node):
            if "enum" in branch or "const" in branch:
                values = branch.get("enum", [branch.get("const")])
                self.choices.setdefault(path, set()).update(str(v) for v in values)
            required = set(branch.get("required", []))
            for name, child in branch.get("properties", {}).items():
                child_path = f"{path}.{name}" if path else name
                self.paths.add(child_path)
                if name in required:
                    self.required.add(child_path)
                self._walk(child, child_path)
            items = branch.get("items")
            if isinstance(items, dict):
                self._walk(items, f"{path}[]")
            extra = branch.get("additionalProperties")
            if isinstance(extra, dict):
                self._walk(extra, f"{path}.<key>")
            # A map whose keys have a grammar (a variable name, a label key) is written
            # with patternProperties: its values are the same `<key>` entries.
            for value in branch.get("patternProperties", {}).values():
                self._walk(value, f"{path}.<key>")


REFERENCE = _reference_rows()


def test_reference_covers_every_kind() -> None:
    assert sorted(REFERENCE) == sorted(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_reference_paths_equal_schema_paths(kind: str) -> None:
    schema = _SchemaPaths(kind_schema(kind))
    documented = set(REFERENCE[kind])
    assert sorted(schema.paths - documented) == [], "in the schema, missing from docs/spec.md"
    assert sorted(documented - schema.paths) == [], "in docs/spec.md, not in the schema"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_reference_required_fields_equal_schema(kind: str) -> None:
    schema = _SchemaPaths(kind_schema(kind))
    documented = {p for p, row in REFERENCE[kind].items() if row["default"] == "**required**"}
    assert documented == schema.required


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_reference_lists_every_choice(kind: str) -> None:
    schema = _SchemaPaths(kind_schema(kind))
    assert schema.choices, "the walker found no enum at all"
    for path, values in schema.choices.items():
        if path.endswith("[]"):
            path = path.removesuffix("[]")  # a list of choices is documented on the list
        cell = REFERENCE[kind][path]["type"]
        missing = sorted(v for v in values if f"`{v}`" not in cell)
        assert missing == [], f"{kind} {path}: choices {missing} not documented"


def test_alias_is_documented_by_its_alias() -> None:
    paths = REFERENCE["Model"]
    assert "spec.alerts[].when.for" in paths
    assert not any("for_" in p for p in paths)


# ---------------------------------------------------------------- (c) codes


def test_every_code_is_documented_with_its_anchor_and_title() -> None:
    lines = _generated_part("errors.md").splitlines()
    for code, (title, fix) in CODES.items():
        anchor = f'<a id="{code.lower()}"></a>`{code}`'
        rows = [line for line in lines if anchor in line]
        assert len(rows) == 1, f"{code} has no anchor, or more than one"
        assert title.replace("|", "\\|") in rows[0], f"{code}: title missing"
        assert fix.replace("|", "\\|") in rows[0], f"{code}: what to do missing"


def test_every_code_used_in_the_compiler_is_declared() -> None:
    used: dict[str, list[str]] = {}
    for source in sorted((ROOT / "compiler").rglob("*.py")):
        for code in re.findall(r"KILN\d{4}", source.read_text(encoding="utf-8")):
            used.setdefault(code, []).append(source.relative_to(ROOT).as_posix())
    assert used, "no code found: is the grep looking in the right place?"
    retired = {code: files for code, files in used.items() if code in RETIRED}
    assert all(files == ["compiler/codes.py"] for files in retired.values()), (
        f"a retired code is raised again: {retired}"
    )
    undeclared = {c: f for c, f in used.items() if c not in CODES and c not in RETIRED}
    assert undeclared == {}, "codes used in compiler/ but missing from compiler/codes.py"


def test_retired_codes_are_documented_and_never_reused() -> None:
    assert not set(RETIRED) & set(CODES)
    lines = _generated_part("errors.md").splitlines()
    for code in RETIRED:
        assert sum(f'<a id="{code.lower()}"></a>`{code}`' in line for line in lines) == 1


def test_every_family_is_documented() -> None:
    families = {code[4:6] for code in CODES}
    assert families <= set(docs.FAMILIES)


# ---------------------------------------------------------------- hand-written parts


def _hand_written_part(name: str) -> str:
    text = (DOCS / name).read_text(encoding="utf-8")
    return text[: text.index(docs.BEGIN)] + text[text.index(docs.END) :]


def test_spec_intro_names_every_overridable_block() -> None:
    intro = _hand_written_part("spec.md")
    missing = [block for block in OVERRIDABLE if f"`{block}`" not in intro]
    assert missing == [], "docs/spec.md's section on overlays is out of date"


def test_errors_intro_lists_every_family() -> None:
    intro = _hand_written_part("errors.md")
    families = sorted({code[4:6] for code in CODES})
    missing = [f for f in families if f"[{f}xx](#kiln{f}xx)" not in intro]
    assert missing == [], "docs/errors.md's table of families is out of date"
