"""Determinism: the same specs give the same bytes, whatever the machine state.

Compiles run as `python -m compiler compile` in separate processes with
different hash seeds, working directories, relative and absolute paths, and spec
files created in different orders (so directory listings differ).
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from compiler.api import compile_tree
from compiler.diagnostics import render
from tests.tools import REPO_ROOT

WriteTree = Callable[..., Path]

# Every field of every kind, with remote artifacts only: no model file to read.
TREE = REPO_ROOT / "tests" / "golden" / "every-field" / "specs"
ISO_TIME = re.compile(rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def spec_texts(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in root.rglob("*.yaml")
    }


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def kiln_compile(cwd: Path, specs: str | Path, out: str | Path, seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    command = [
        sys.executable,
        "-m",
        "compiler",
        "compile",
        "--specs",
        str(specs),
        "--out",
        str(out),
    ]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, write_tree: WriteTree
) -> tuple[Path, list[dict[str, bytes]]]:
    """The same specs compiled in three different situations; returns (tmp root, outputs)."""
    root = tmp_path_factory.mktemp("determinism")
    texts = spec_texts(TREE)
    first = write_tree(root / "a" / "specs", texts)
    second = write_tree(root / "b" / "deeper" / "specs", texts, reverse=True)
    assert sorted(os.listdir(first)) == sorted(os.listdir(second))
    # Relative paths from the project folder, hash seed 0.
    kiln_compile(root / "a", "specs", "out", "0")
    # Absolute paths from an unrelated folder, files created in reverse order.
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    kiln_compile(elsewhere, second, root / "b" / "out", "4242")
    # From inside the spec folder itself, `--specs .`, a random hash seed.
    kiln_compile(second, ".", "../out-again", "random")
    outputs = [root / "a" / "out", root / "b" / "out", root / "b" / "deeper" / "out-again"]
    return root, [read_tree(out) for out in outputs]


def test_same_bytes_across_seeds_folders_and_creation_orders(
    runs: tuple[Path, list[dict[str, bytes]]],
) -> None:
    _, outputs = runs
    first = outputs[0]
    assert len(first) > 10
    for other in outputs[1:]:
        assert other.keys() == first.keys()
        assert [p for p in first if first[p] != other[p]] == []


def test_output_has_lf_endings_only(runs: tuple[Path, list[dict[str, bytes]]]) -> None:
    _, outputs = runs
    for path, data in outputs[0].items():
        assert b"\r" not in data, path
        assert data.endswith(b"\n"), path


def test_output_has_no_absolute_paths(runs: tuple[Path, list[dict[str, bytes]]]) -> None:
    root, outputs = runs
    # (Paths inside containers, such as a job's /tmp/kiln/out, are fine: they are constants.)
    forbidden = {str(root), str(root.resolve()), os.path.expanduser("~"), os.getcwd(), sys.prefix}
    for path, data in outputs[0].items():
        text = data.decode("utf-8")
        for needle in sorted(forbidden):
            assert needle not in text, f"{path} contains {needle}"


def test_output_has_no_timestamps(runs: tuple[Path, list[dict[str, bytes]]]) -> None:
    _, outputs = runs
    today = datetime.date.today()
    dates = {today.isoformat(), (today - datetime.timedelta(days=1)).isoformat()}
    for path, data in outputs[0].items():
        assert not ISO_TIME.search(data), path
        for date in dates:
            assert date.encode() not in data, path


def test_in_process_compiles_match_the_subprocess_ones(
    runs: tuple[Path, list[dict[str, bytes]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outputs = runs
    monkeypatch.chdir(root / "a")
    result = compile_tree(Path("specs"), tmp_path / "out")
    assert result.ok, render(result.diagnostics, "text")
    assert read_tree(tmp_path / "out") == outputs[0]
