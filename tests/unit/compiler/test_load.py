"""The loader's shortcuts (remembered scalar tags, strings taken as they are) read
every scalar exactly as ruamel.yaml's own safe loader does."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from compiler.load import _parse_text, load_text

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
    expected = YAML(typ="safe", pure=True).load(TRICKY)
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
    # With the map damaged in the cache, the bytes are parsed again.
    entry = next((tmp_path / "cache" / "specs").iterdir())
    entry.write_bytes(entry.read_bytes()[:-10])  # the map cut short
    again, _ = load_text("specs/project.yaml", PROJECT)
    assert again is not None and again._keys is None
    assert again.keys == parsed.keys
