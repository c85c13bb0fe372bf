"""The loader's shortcuts (remembered scalar tags, strings taken as they are) read
every scalar exactly as ruamel.yaml's own safe loader does."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from compiler import cache
from compiler.load import _parse_text, load_text, load_tree
from tests.tools import REPO_ROOT

TRICKY = """\
plain: text
quoted: "yes"
single: 'null'
yes_word: yes
on_word: on
true_word: true
null_word: null
tilde: ~
empty:
int: 42
octal: 0o17
old_octal: 017
hex: 0x1F
underscored: 1_000
float: 1.5
exponent: 1e3
infinity: .inf
date: 2024-01-02
version_like: 1.10
colon_in_flow: {uri: s3://bucket/x}
list: [a, 1, 2.5, false, null, "2"]
block: |
  two
  lines
"""


def test_scalars_read_as_ruamel_reads_them() -> None:
    """As ruamel reads YAML, except that a number with underscores is text (YAML 1.2)."""
    expected = YAML(typ="safe", pure=True).load(TRICKY)
    assert expected["underscored"] == 1000
    expected["underscored"] = "1_000"
    for _ in range(2):  # the second time, every tag is remembered
        document, problems = _parse_text("tricky.yaml", TRICKY.encode())
        assert problems == [] and document is not None
        assert document.data == expected
        assert {k: type(v) for k, v in document.data.items()} == {
            k: type(v) for k, v in expected.items()
        }
    assert isinstance(expected["date"], datetime.date)


def test_a_yaml_directive_bypasses_the_remembered_tags() -> None:
    """Tags depend on the YAML version; a text naming one is resolved afresh, as
    ruamel's C-parser loader resolves it."""
    _parse_text("new.yaml", b"answer: yes\n")  # remembered for the default version
    text = "%YAML 1.1\n---\nanswer: yes\n"
    document, problems = _parse_text("old.yaml", text.encode())
    assert problems == [] and document is not None
    assert document.data == YAML(typ="safe").load(text)


PROJECT = b"apiVersion: kiln/v1alpha1\nkind: Project\nmetadata:\n  name: shop\n"


def test_a_cached_document_gets_its_source_map_when_first_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    parsed, _ = load_text("specs/project.yaml", PROJECT)
    cached, _ = load_text("specs/project.yaml", PROJECT)
    assert parsed is not None and cached is not None
    assert cached.raw == PROJECT and cached._values is None  # not read until needed
    assert cached.locate(("metadata", "name")) == parsed.locate(("metadata", "name")) == (4, 9)
    assert (cached.values, cached.keys) == (parsed.values, parsed.keys)
    # With the entry damaged in the cache, it fails its HMAC: the bytes are parsed again.
    entry = next((tmp_path / "cache" / cache.SIGNED / "specs").iterdir())
    entry.write_bytes(entry.read_bytes()[:-10])  # the map cut short
    again, _ = load_text("specs/project.yaml", PROJECT)
    assert again is not None and again._keys is not None  # parsed, the map with it
    assert again.keys == parsed.keys


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("x:\n  " + "- " * 300 + "v\n", (2, 3), "300 nesting indicators on one line"),
        ("x:\n  " + "-\t" * 300 + "v\n", (2, 3), "300 nesting indicators on one line"),
        ("? " * 300 + "v\n", (1, 1), "300 nesting indicators on one line"),
        ("- &a " * 300 + "v\n", (1, 1), "300 nesting indicators on one line"),
        ("a:\n" + " " * 1200 + "b: 1\n", (2, 1), "a line indented 1200 columns"),
    ],
)
def test_deep_block_nesting_is_refused_before_composing(
    text: str, where: tuple[int, int], what: str
) -> None:
    document, diagnostics = load_text("deep.yaml", text.encode())
    assert document is None
    [problem] = diagnostics
    assert (problem.code, (problem.line, problem.col)) == ("KILN1008", where)
    assert what in problem.message


def test_nesting_within_the_bounds_reaches_the_depth_rule() -> None:
    """200 levels pass the text check and are refused by the builder's depth bound."""
    _, diagnostics = load_text("deep.yaml", ("x:\n  " + "- " * 200 + "v\n").encode())
    assert [d.code for d in diagnostics] == ["KILN1008"]
    assert "more than 64 levels" in diagnostics[0].message


def test_a_spec_with_many_list_items_is_not_mistaken_for_nesting() -> None:
    items = "".join(f"  - name: f{i}\n    dtype: fp32\n" for i in range(400))
    document, diagnostics = load_text("wide.yaml", f"features:\n{items}".encode())
    assert diagnostics == [] and document is not None
    assert len(document.data["features"]) == 400


@pytest.mark.parametrize("number", ["9" * 101, "0." + "1" * 100, "1" * 5000])
def test_a_number_too_long_to_hold_is_refused_at_its_place(number: str) -> None:
    _, diagnostics = load_text("n.yaml", f"a:\n  b: {number}\n".encode())
    assert [(d.code, d.line, d.col) for d in diagnostics] == [("KILN1013", 2, 6)]


def test_a_long_quoted_number_is_text() -> None:
    document, diagnostics = load_text("n.yaml", f'a: "{"9" * 5000}"\n'.encode())
    assert diagnostics == [] and document is not None and document.data["a"] == "9" * 5000


@pytest.mark.parametrize(
    ("raw", "where", "named"),
    [
        (b"a: 1\nb: \x00x\n", (2, 4), "U+0000 (NUL)"),
        (b"a: 1\r\nb: x\xe2\x80\xa8y\n", (2, 5), "U+2028 (LINE SEPARATOR)"),
        (b"a: 1\rb: \xe2\x80\xa9\n", (2, 4), "U+2029 (PARAGRAPH SEPARATOR)"),
        (b"a:\n  - 1\n\xc2\x85b: 2\n", (3, 1), "U+0085 (NEXT LINE)"),
        (b"a: 1\x1b[0m\n", (1, 5), "U+001B (a control character)"),
    ],
)
def test_characters_a_spec_may_not_hold_are_named_where_an_editor_shows_them(
    raw: bytes, where: tuple[int, int], named: str
) -> None:
    _, diagnostics = load_text("c.yaml", raw)
    assert [(d.code, (d.line, d.col)) for d in diagnostics] == [("KILN1014", where)]
    assert diagnostics[0].message.startswith(named)


def test_escaped_separators_and_tabs_in_strings_are_fine() -> None:
    document, diagnostics = load_text("c.yaml", b'a: "x\\u2028y"\nb: "\\t"\nc: caf\xc3\xa9\n')
    assert diagnostics == [] and document is not None
    assert document.data == {"a": "x\u2028y", "b": "\t", "c": "café"}


@pytest.mark.parametrize("raw", [b"---\n", b"---", b"--- null\n", b"~\n"])
def test_an_empty_document_is_reported_at_line_1_in_words(raw: bytes) -> None:
    _, diagnostics = load_text("e.yaml", raw)
    assert [(d.code, d.line, d.col) for d in diagnostics] == [("KILN1011", 1, 1)]
    assert "found an empty document" in diagnostics[0].message
    assert "NoneType" not in diagnostics[0].message


@pytest.mark.parametrize(
    "name",
    [
        "x\n---\n{apiVersion: v1, kind: ServiceAccount, metadata: {name: injected}}\n#.yaml",
        "x{{workflow.uid}}$(HOME).yaml",
        "x{out}.yaml",
    ],
)
def test_a_spec_file_name_that_would_reach_the_output_as_code_is_refused(
    tmp_path: Path, name: str
) -> None:
    """A spec's path goes into generated headers and the training workflow's arguments:
    a newline would add YAML documents there, `{{` an Argo expression, `{out}` a step token."""
    specs = tmp_path / "specs"
    shutil.copytree(REPO_ROOT / "specs", specs)
    shutil.copy(specs / "models" / "car-price.yaml", specs / "models" / name)
    documents, problems = load_tree(specs)
    (problem,) = [p for p in problems if p.code == "KILN1015"]
    assert "\n" not in problem.file and "rename it" in problem.hint
    assert all(name not in d.path for d in documents)
