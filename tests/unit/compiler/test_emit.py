"""Emit: what `kiln compile` writes, prunes, refuses, checks and diffs.

Kiln owns exactly the files in the manifest of its last compile; it never
touches anything else, and a compile that fails writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from compiler.api import compile_tree
from compiler.artifact import Artifact
from compiler.cli import cli
from compiler.diagnostics import render
from compiler.emit import MANIFEST, MANIFEST_FORMAT, WriteBack, manifest_text
from compiler.emit import files as emit_files
from compiler.ir import Source
from compiler.serialize import to_json

SpecFiles = Callable[..., dict[str, str]]
WriteTree = Callable[..., Path]
Snapshot = dict[str, tuple[bytes, int, int]]

CONFIG = "staging/alpha/triton/config.pbtxt"
PAST = 1_000_000_000  # 2001: a compile that rewrites a file moves its mtime to now


def snapshot(root: Path) -> Snapshot:
    """Every file and folder under `root`: bytes, mtime and inode (folders: empty bytes)."""
    if not root.exists():
        return {}
    found: Snapshot = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        data = path.read_bytes() if path.is_file() else b""
        found[path.relative_to(root).as_posix()] = (data, stat.st_mtime_ns, stat.st_ino)
    return found


def age(root: Path) -> None:
    for path in root.rglob("*"):
        os.utime(path, (PAST, PAST))


def kiln(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def specs(tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree) -> Path:
    return write_tree(tmp_path / "specs", spec_files(["alpha", "beta"]))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def compiled(specs: Path, out: Path, mode: WriteBack = WriteBack.YES) -> list[str]:
    result = compile_tree(specs, out, mode)
    assert result.ok, render(result.diagnostics, "text")
    assert result.report is not None
    return sorted(result.report.written)


def produced(out: Path) -> set[str]:
    return {p for p, (data, _, _) in snapshot(out).items() if (out / p).is_file()}


# --- writing ---------------------------------------------------------------------------


def test_first_compile_writes_every_file_and_the_manifest(specs: Path, out: Path) -> None:
    written = compiled(specs, out)
    assert CONFIG in written
    assert MANIFEST not in written  # the manifest is bookkeeping, not an artifact
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert set(manifest["files"]) == set(written) == produced(out) - {MANIFEST}
    for path, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((out / path).read_bytes()).hexdigest()
        assert entry["sources"] == sorted(entry["sources"])
    for spec, digest in manifest["specs"].items():
        assert spec.startswith("specs/")
        assert digest == hashlib.sha256((specs.parent / spec).read_bytes()).hexdigest()


def test_no_change_recompile_writes_nothing(specs: Path, out: Path) -> None:
    compiled(specs, out)
    age(out)
    before = snapshot(out)
    result = compile_tree(specs, out)
    assert result.report is not None
    assert (result.report.written, result.report.removed) == ([], [])
    assert result.report.unchanged == len(produced(out))
    assert snapshot(out) == before  # same bytes, same mtimes, same inodes


def test_removed_model_is_pruned_with_its_empty_folders(specs: Path, out: Path) -> None:
    compiled(specs, out)
    (specs / "models" / "beta.yaml").unlink()
    result = compile_tree(specs, out)
    assert result.ok and result.report is not None
    assert result.report.removed and all("/beta/" in p for p in result.report.removed)
    assert not (out / "staging" / "beta").exists()
    assert not (out / "local" / "beta").exists()
    assert (out / CONFIG).is_file()
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert not [p for p in manifest["files"] if "/beta/" in p]
    assert set(manifest["files"]) == produced(out) - {MANIFEST}


def test_hand_edited_owned_file_is_restored(specs: Path, out: Path) -> None:
    compiled(specs, out)
    original = (out / CONFIG).read_bytes()
    (out / CONFIG).write_bytes(b"max_batch_size: 1000\n")
    (out / "local" / "alpha" / "triton" / "config.pbtxt").unlink()
    assert compiled(specs, out) == ["local/alpha/triton/config.pbtxt", CONFIG]
    assert (out / CONFIG).read_bytes() == original


def test_output_is_lf_terminated_text(specs: Path, out: Path) -> None:
    compiled(specs, out)
    for path in produced(out):
        data = (out / path).read_bytes()
        assert b"\r" not in data and data.endswith(b"\n"), path


# --- what Kiln does not own ------------------------------------------------------------


def test_foreign_file_where_kiln_would_write_is_a_conflict(specs: Path, out: Path) -> None:
    (out / CONFIG).parent.mkdir(parents=True)
    (out / CONFIG).write_text("# mine\n", encoding="utf-8")
    before = snapshot(out)
    result = compile_tree(specs, out)
    assert not result.ok
    assert [d.code for d in result.diagnostics] == ["KILN1901"]
    assert result.diagnostics[0].file == (out / CONFIG).as_posix()
    assert snapshot(out) == before  # nothing written: no other file, no manifest


def test_conflict_in_a_later_compile_writes_nothing(
    specs: Path, out: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    compiled(specs, out)
    # A new model whose output path is taken, and a change to an existing one.
    write_tree(specs, {"models/gamma.yaml": spec_files(["gamma"])["models/gamma.yaml"]})
    alpha = specs / "models" / "alpha.yaml"
    alpha.write_text(alpha.read_text().replace("max_batch_size: 8", "max_batch_size: 16"))
    foreign = out / "staging" / "gamma" / "triton" / "config.pbtxt"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("# mine\n", encoding="utf-8")
    age(out)
    before = snapshot(out)
    result = compile_tree(specs, out)
    assert [d.code for d in result.diagnostics] == ["KILN1901"]
    assert snapshot(out) == before


@pytest.mark.parametrize("blocker", ["folder-at-file", "file-at-folder"])
def test_something_in_the_way_is_a_conflict_and_nothing_is_written(
    specs: Path, out: Path, blocker: str
) -> None:
    if blocker == "folder-at-file":
        (out / CONFIG).mkdir(parents=True)
    else:
        out.mkdir()
        (out / "staging").write_text("a file where Kiln needs a folder\n", encoding="utf-8")
    before = snapshot(out)
    result = compile_tree(specs, out)
    assert not result.ok
    assert {d.code for d in result.diagnostics} == {"KILN1901"}
    assert snapshot(out) == before


def test_foreign_files_elsewhere_are_never_touched(specs: Path, out: Path) -> None:
    compiled(specs, out)
    readme = out / "README.md"
    notes = out / "staging" / "beta" / "notes.txt"
    readme.write_text("hand-written\n", encoding="utf-8")
    notes.write_text("keep me\n", encoding="utf-8")
    age(out)
    kept = {k: v for k, v in snapshot(out).items() if k in ("README.md", "staging/beta/notes.txt")}
    (specs / "models" / "beta.yaml").unlink()  # beta's files go, its folder stays for notes.txt
    compiled(specs, out)
    compiled(specs, out)
    after = snapshot(out)
    assert {k: after[k] for k in kept} == kept
    assert sorted(p for p in produced(out) if "/beta/" in p) == ["staging/beta/notes.txt"]


# --- check, diff and failed compiles -----------------------------------------------------


def test_check_names_stale_missing_and_extra_files_and_changes_nothing(
    specs: Path, out: Path
) -> None:
    compiled(specs, out)
    (out / CONFIG).write_text("stale\n", encoding="utf-8")
    (out / "local" / "alpha" / "triton" / "config.pbtxt").unlink()
    (specs / "models" / "beta.yaml").unlink()
    age(out)
    before = snapshot(out)
    result = kiln("compile", "--specs", specs, "--out", out, "--check")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if "KILN1902" in line]
    assert any(f"{out.as_posix()}/{CONFIG}:" in ln and "stale" in ln for ln in lines)
    assert any("local/alpha/triton/config.pbtxt" in ln and "missing" in ln for ln in lines)
    extra = [ln for ln in lines if "/beta/" in ln]
    assert extra and all("no longer produced" in ln for ln in extra)
    assert any(MANIFEST in ln for ln in lines)  # the manifest is stale too
    assert snapshot(out) == before


def test_check_passes_when_up_to_date(specs: Path, out: Path) -> None:
    compiled(specs, out)
    result = kiln("compile", "--specs", specs, "--out", out, "--check")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_check_of_a_missing_output_fails(specs: Path, out: Path) -> None:
    result = kiln("compile", "--specs", specs, "--out", out, "--check")
    assert result.exit_code == 1
    assert "KILN1902" in result.output
    assert not out.exists()


def test_diff_prints_a_unified_diff_and_changes_nothing(specs: Path, out: Path) -> None:
    compiled(specs, out)
    alpha = specs / "models" / "alpha.yaml"
    alpha.write_text(alpha.read_text().replace("max_batch_size: 8", "max_batch_size: 16"))
    (specs / "models" / "beta.yaml").unlink()
    age(out)
    before = snapshot(out)
    result = kiln("compile", "--specs", specs, "--out", out, "--diff")
    assert result.exit_code == 0, result.output
    assert f"--- a/{out.as_posix()}/{CONFIG}" in result.output
    assert f"+++ b/{out.as_posix()}/{CONFIG}" in result.output
    assert "-max_batch_size: 8\n+max_batch_size: 16\n" in result.output
    assert "+++ /dev/null" in result.output  # beta's files would be removed
    assert snapshot(out) == before


def test_diff_of_an_up_to_date_output_is_empty(specs: Path, out: Path) -> None:
    compiled(specs, out)
    result = CliRunner().invoke(
        cli, ["compile", "--specs", str(specs), "--out", str(out), "--diff"]
    )
    assert result.exit_code == 0
    assert result.stdout == ""


def test_compile_with_spec_errors_writes_nothing(specs: Path, out: Path) -> None:
    compiled(specs, out)
    age(out)
    before = snapshot(out)
    alpha = specs / "models" / "alpha.yaml"
    alpha.write_text(alpha.read_text().replace("max_batch_size:", "max_batch_sizes:"))
    result = kiln("compile", "--specs", specs, "--out", out)
    assert result.exit_code == 1
    assert "error[KILN" in result.output
    assert snapshot(out) == before
    fresh = out.parent / "fresh"
    assert kiln("compile", "--specs", specs, "--out", fresh).exit_code == 1
    assert not fresh.exists()


# --- atomic writes -----------------------------------------------------------------------


def test_atomic_writes_leave_no_temporary_files(specs: Path, out: Path) -> None:
    compiled(specs, out)
    assert not [p for p in produced(out) if p.endswith(".tmp") or "/." in f"/{p}"]


def test_a_failed_write_leaves_no_temporary_file(
    specs: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_replace = os.replace

    def failing_replace(source: str, target: str | Path) -> None:
        calls.append(str(target))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing_replace)  # emit writes through os.replace
    out.mkdir()  # an existing folder is written file by file (a new one whole: below)
    result = compile_tree(specs, out)
    assert [d.code for d in result.diagnostics] == ["KILN1903"]
    assert not [p for p in produced(out) if p.endswith(".tmp")]
    # The interim manifest claims every planned file, so the files that did get
    # written are not mistaken for someone else's on the next compile.
    claimed = json.loads((out / MANIFEST).read_text())["files"]
    assert set(claimed) >= {p for p in produced(out) if p != MANIFEST}
    monkeypatch.setattr(os, "replace", real_replace)
    again = compile_tree(specs, out)
    assert again.ok, [d.text() for d in again.diagnostics]
    assert compile_tree(specs, out, WriteBack.CHECK).ok


def test_a_first_compile_appears_whole_or_not_at_all(
    specs: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = emit_files.write_new
    written: list[str] = []

    def failing_write(path: str, data: bytes) -> tuple[int, int]:
        written.append(path)
        if len(written) == 5:
            raise OSError(28, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(emit_files, "write_new", failing_write)
    result = compile_tree(specs, out)
    assert [d.code for d in result.diagnostics] == ["KILN1903"]
    assert not out.exists()
    assert sorted(p.name for p in out.parent.iterdir() if "kiln-tmp" in p.name) == []
    monkeypatch.setattr(emit_files, "write_new", real_write)
    assert compile_tree(specs, out).ok
    assert not [p for p in out.parent.iterdir() if "kiln-tmp" in p.name]
    assert compile_tree(specs, out, WriteBack.CHECK).ok


# --- exit codes --------------------------------------------------------------------------


def test_exit_codes(specs: Path, out: Path, tmp_path: Path) -> None:
    assert kiln("compile", "--specs", specs, "--out", out).exit_code == 0
    assert kiln("compile", "--specs", specs, "--out", out, "--check").exit_code == 0
    usage = kiln("compile", "--specs", specs, "--out", out, "--check", "--diff")
    assert usage.exit_code == 2
    assert "cannot be combined" in usage.output
    missing = kiln("compile", "--specs", tmp_path / "nowhere", "--out", out)
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
    (specs / "project.yaml").write_text("kind: [\n", encoding="utf-8")
    assert kiln("compile", "--specs", specs, "--out", out).exit_code == 1


def test_the_manifest_is_what_the_json_encoder_writes() -> None:
    """The manifest is assembled as text for speed: byte for byte what the generic
    encoder writes for the same document, escapes and all."""
    project = Source("specs/project.yaml", "d0")
    odd = Source('specs/models/ünï "côde"\\.yaml', "d1")
    artifacts = [
        Artifact("staging/m/a.yaml", b"a", (odd, project)),
        Artifact("local/m/tab\there.json", b"b", (odd, project)),
        Artifact("argocd/x.yaml", b"c", (project,)),
        Artifact("lonely.txt", b"d", ()),
    ]
    document = {
        "files": {
            a.path: {"sha256": a.digest, "sources": sorted({s.file for s in a.sources})}
            for a in sorted(artifacts, key=lambda a: a.path)
        },
        "format": MANIFEST_FORMAT,
        "generator": "kiln",
        "specs": {'specs/models/ünï "côde"\\.yaml': "d1", "specs/project.yaml": "d0"},
    }
    assert manifest_text(artifacts) == to_json(document)
    empty = {"files": {}, "format": MANIFEST_FORMAT, "generator": "kiln", "specs": {}}
    assert manifest_text([]) == to_json(empty)
