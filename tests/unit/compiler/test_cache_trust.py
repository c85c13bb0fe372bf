"""The disk cache decides what a spec means and what runs: only entries this user's
Kiln wrote, in a folder that is the user's alone, are ever used."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from compiler import cache
from compiler.api import compile_tree
from compiler.diagnostics import render

SpecFiles = Callable[..., dict[str, str]]
WriteTree = Callable[..., Path]
IMAGE = b"ghcr.io/example/runtime:0.1.0"
POISON = b"ghcr.io/evil666/runtime:0.1.0"  # as long as IMAGE: the marshal blob stays valid


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("KILN_CACHE_DIR", str(root))
    return root


def output_text(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())


def test_a_poisoned_parse_cache_entry_is_ignored(
    tmp_path: Path, cache_root: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    specs = write_tree(tmp_path / "specs", spec_files(["alpha"]))
    assert compile_tree(specs, tmp_path / "first").ok
    entries = [
        p for p in (cache_root / cache.SIGNED / "specs").iterdir() if IMAGE in p.read_bytes()
    ]
    assert entries, "the parse cache holds the Project's images"
    for entry in entries:  # what anyone who can write the folder could do
        entry.write_bytes(entry.read_bytes().replace(IMAGE, POISON))
    result = compile_tree(specs, tmp_path / "second")
    assert result.ok, render(result.diagnostics, "text")
    text = output_text(tmp_path / "second")
    assert IMAGE in text and POISON not in text


def test_the_cache_folder_and_its_key_are_private(cache_root: Path) -> None:
    cache.put("things", "entry", b"data")
    assert cache.get("things", "entry") == b"data"
    for path, mode in [(cache_root, 0o700), (cache_root / cache.SIGNED / "things", 0o700)]:
        assert os.stat(path).st_mode & 0o777 == mode, path
    assert os.stat(cache_root / "key").st_mode & 0o777 == 0o600
    assert os.stat(cache_root / cache.SIGNED / "things" / "entry").st_mode & 0o077 == 0


def test_an_entry_others_may_write_is_ignored(cache_root: Path) -> None:
    cache.put("things", "entry", b"data")
    (cache_root / cache.SIGNED / "things" / "entry").chmod(0o666)
    assert cache.get("things", "entry") is None


def test_an_entry_moved_to_another_key_is_ignored(cache_root: Path) -> None:
    cache.put("things", "one", b"first")
    os.replace(
        cache_root / cache.SIGNED / "things" / "one", cache_root / cache.SIGNED / "things" / "two"
    )
    assert cache.get("things", "two") is None


def test_a_linked_entry_is_not_followed(cache_root: Path, tmp_path: Path) -> None:
    cache.put("things", "entry", b"data")
    planted = tmp_path / "planted"
    os.replace(cache_root / cache.SIGNED / "things" / "entry", planted)
    (cache_root / cache.SIGNED / "things" / "entry").symlink_to(planted)
    assert cache.get("things", "entry") is None


def test_a_shared_cache_folder_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # a folder in /tmp anyone could have made, or write into
    monkeypatch.setenv("KILN_CACHE_DIR", str(shared))
    assert cache.cache_dir() is None
    cache.put("things", "entry", b"data")
    assert list(shared.iterdir()) == []
    assert cache.get("things", "entry") is None


def test_a_readable_key_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "leaky"
    root.mkdir(mode=0o700)
    (root / "key").write_bytes(b"k" * 32)
    (root / "key").chmod(0o644)  # anyone could read it and sign entries
    monkeypatch.setenv("KILN_CACHE_DIR", str(root))
    assert cache.cache_dir() is None
