"""The output folder is Kiln's alone: a manifest or links from a checkout cannot make
Kiln delete, read or write anything outside it, or anything it did not write.

Each test is an attack a pull request could carry: the bait is CI saying "stale: run
`kiln compile`".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from compiler.api import compile_tree
from compiler.cli import cli
from compiler.diagnostics import render
from compiler.emit import MANIFEST, WriteBack

SpecFiles = Callable[..., dict[str, str]]
WriteTree = Callable[..., Path]
CONFIG = "staging/alpha/triton/config.pbtxt"


@pytest.fixture
def specs(tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree) -> Path:
    return write_tree(tmp_path / "specs", spec_files(["alpha", "beta"]))


@pytest.fixture
def out(tmp_path: Path, specs: Path) -> Path:
    out = tmp_path / "out"
    result = compile_tree(specs, out)
    assert result.ok, render(result.diagnostics, "text")
    return out


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the output folder that someone cares about."""
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_text("SECRET=hunter2\n", encoding="utf-8")
    return path


def kiln(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def list_in_manifest(out: Path, entries: dict[str, str]) -> None:
    """Add entries (path -> sha256) to the manifest, as a pull request could."""
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    for path, digest in entries.items():
        manifest["files"][path] = {"sha256": digest, "sources": []}
    (out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_entries_outside_the_output_are_ignored_by_every_mode(
    specs: Path, out: Path, victim: Path
) -> None:
    absolute = victim.as_posix()
    traversing = f"../outside/{victim.name}"
    list_in_manifest(out, {absolute: digest_of(victim), traversing: digest_of(victim)})
    diff = kiln("compile", "--specs", specs, "--out", out, "--diff")
    assert "SECRET" not in diff.output  # never read to print a diff
    check = kiln("compile", "--specs", specs, "--out", out, "--check")
    assert "SECRET" not in check.output
    result = compile_tree(specs, out)
    assert result.ok and result.report is not None
    assert victim.read_text(encoding="utf-8") == "SECRET=hunter2\n"  # not deleted
    assert result.report.removed == []
    refused = [d for d in result.diagnostics if d.code == "KILN1906"]
    assert sorted(d.message for d in refused) == sorted(
        f"the manifest lists {e!r}, which is not a path inside the output folder"
        for e in (absolute, traversing)
    )
    assert all(not d.is_error for d in refused)
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert absolute not in manifest["files"] and traversing not in manifest["files"]


@pytest.mark.parametrize("entry", ["./staging/x.yaml", "staging//x.yaml", "a/./b", "a\\..\\b", ""])
def test_unnormalised_manifest_entries_are_ignored(specs: Path, out: Path, entry: str) -> None:
    list_in_manifest(out, {entry: "0" * 64})
    result = compile_tree(specs, out)
    assert [d.code for d in result.diagnostics] == ["KILN1906"]


def test_a_symlinked_output_folder_is_refused_and_nothing_is_written(
    specs: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "linked-out"
    link.symlink_to(elsewhere, target_is_directory=True)
    for mode in WriteBack:
        result = compile_tree(specs, link, mode)
        assert [d.code for d in result.diagnostics] == ["KILN1904"], mode
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_folder_inside_the_output_is_never_written_through(
    specs: Path, out: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (out / "staging" / "alpha").rename(elsewhere)  # its files as Kiln wrote them, moved
    (out / "staging" / "alpha").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "triton" / "config.pbtxt").write_text("changed\n", encoding="utf-8")
    result = compile_tree(specs, out)
    assert not result.ok
    assert {d.code for d in result.diagnostics} == {"KILN1901"}
    assert (elsewhere / "triton" / "config.pbtxt").read_text(encoding="utf-8") == "changed\n"
    diff = kiln("compile", "--specs", specs, "--out", out, "--diff")
    assert "-changed" not in diff.output  # the link's target is not read either


def test_a_symlinked_file_is_neither_read_nor_deleted(specs: Path, out: Path, victim: Path) -> None:
    (out / CONFIG).unlink()
    (out / CONFIG).symlink_to(victim)
    diff = kiln("compile", "--specs", specs, "--out", out, "--diff")
    assert "SECRET" not in diff.output
    result = compile_tree(specs, out)
    assert not result.ok and {d.code for d in result.diagnostics} == {"KILN1901"}
    assert (out / CONFIG).is_symlink()
    # No longer produced: a link with the name of a file Kiln owned is left, and said so.
    (specs / "models" / "alpha.yaml").unlink()
    result = compile_tree(specs, out)
    assert result.ok, render(result.diagnostics, "text")
    assert (out / CONFIG).is_symlink() and victim.exists()
    assert [d.file for d in result.diagnostics if d.code == "KILN1905"] == [
        (out / CONFIG).as_posix()
    ]


def test_a_file_changed_since_kiln_wrote_it_is_left_when_no_longer_produced(
    specs: Path, out: Path
) -> None:
    (out / CONFIG).write_text("someone's notes\n", encoding="utf-8")
    (specs / "models" / "alpha.yaml").unlink()
    result = compile_tree(specs, out)
    assert result.ok and result.report is not None
    assert CONFIG not in result.report.removed
    assert (out / CONFIG).read_text(encoding="utf-8") == "someone's notes\n"
    assert [d.code for d in result.diagnostics] == ["KILN1905"]
    assert any("/alpha/" in p for p in result.report.removed)  # the untouched ones go
