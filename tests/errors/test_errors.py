"""The error-case corpus: bad specs in, exact diagnostics out, output untouched.

Every folder under `cases/` is one bad input. Its files are laid over a copy of
the clean tree in `base/` (a case holds only the files it changes; `remove.txt`
lists base files to delete, one path per line). `expected.txt` holds the
complete, sorted list of diagnostics `kiln validate` must print for it.

For each case the output folder is first filled with a hand-written sentinel
file and the compiled output of the clean base tree; `kiln compile` must then
fail without changing a byte of it, and neither command may crash.

Set KILN_REGENERATE=1 to rewrite every `expected.txt` from what Kiln prints
instead of asserting, then review each changed file by eye.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from compiler.api import build
from compiler.cli import cli
from compiler.codes import CODES
from compiler.diagnostics import Diagnostic, render, summary

HERE = Path(__file__).parent
BASE = HERE / "base"
CASES = HERE / "cases"
REPO = HERE.parents[1]
# The real ONNX file of the example platform; the base model serves it locally.
ONNX = REPO / "specs" / "artifacts" / "models" / "car-loan-default"
ONNX_IN_TREE = Path("specs/artifacts/models/car-loan-default")
REGENERATE = os.environ.get("KILN_REGENERATE") == "1"
SENTINEL = "NOTES.md"
# Seconds one CLI run may take: an alias bomb or a hang must not get through.
TIME_LIMIT = 5.0


def _too_large(root: Path) -> None:
    """A spec just over the 1 MiB limit (too big to keep in the repository)."""
    path = root / "specs" / "models" / "huge.yaml"
    body = b"apiVersion: kiln/v1alpha1\nkind: Model\n"
    padding = b"# " + b"x" * 97 + b"\n"
    path.write_bytes(body + padding * ((1024 * 1024) // len(padding) + 1))


# A file every user, root included, fails to read: reading /proc/self/mem at
# offset 0 is an I/O error. Linux only; the case is skipped elsewhere.
UNREADABLE = Path("/proc/self/mem")


def _unreadable(root: Path) -> None:
    (root / "specs" / "featuresets" / "vehicle.yaml").symlink_to(UNREADABLE)


def _nested(indicator: str) -> Callable[[Path], None]:
    """A spec nesting 100,000 levels on one line: it crashed the C composer (segfault)."""

    def write(root: Path) -> None:
        path = root / "specs" / "featuresets" / "deep.yaml"
        header = "apiVersion: kiln/v1alpha1\nkind: FeatureSet\nspec:\n  x:\n"
        path.write_text(header + "    " + indicator * 100_000 + "x\n")

    return write


def _artifact_link(root: Path) -> None:
    """The local artifact replaced by a link to a file outside the project."""
    path = root / ONNX_IN_TREE / "1" / "model.onnx"
    path.unlink()
    path.symlink_to("/etc/passwd")


def _folder_link(root: Path) -> None:
    """A SavedModel folder holding a link to a file outside the project (a link is not
    stored in a case; git would keep it as text on some checkouts)."""
    folder = root / "specs/artifacts/models/car-loan-default/2/model.savedmodel/variables"
    folder.mkdir(parents=True)
    (folder / "variables.index").symlink_to("/etc/passwd")


# Cases whose input is generated rather than stored: case name -> writer.
GENERATED: dict[str, Callable[[Path], None]] = {
    "load-file-too-large": _too_large,
    "load-file-unreadable": _unreadable,
    "load-deep-block-sequence": _nested("- "),
    "load-deep-explicit-keys": _nested("? "),
    "locations-artifact-link-outside": _artifact_link,
    "format-savedmodel-folder-link": _folder_link,
}
# Cases whose problem lies in the output folder, so that only `compile` reports it.
WRITE_ONLY = frozenset({"output-unowned-file"})


def _cases() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if p.is_dir())


def _lay(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)


def _base_tree(root: Path) -> None:
    _lay(BASE, root)
    _lay(ONNX, root / ONNX_IN_TREE)


def _removals(case: Path) -> list[str]:
    listing = case / "remove.txt"
    if not listing.exists():
        return []
    return [line.strip() for line in listing.read_text().splitlines() if line.strip()]


def _snapshot(out: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under `out`."""
    return {
        path.relative_to(out).as_posix(): (path.read_bytes() if path.is_file() else None)
        for path in sorted(out.rglob("*"))
    }


def _invoke(args: list[str]) -> tuple[Result, float]:
    started = time.perf_counter()
    result = CliRunner().invoke(cli, args)
    return result, time.perf_counter() - started


@pytest.fixture(scope="session")
def prior_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What compiling the clean base tree writes, plus a file Kiln does not own."""
    root = tmp_path_factory.mktemp("base")
    _base_tree(root)
    result = CliRunner().invoke(
        cli, ["compile", "--specs", str(root / "specs"), "--out", str(root / "generated")]
    )
    assert result.exit_code == 0, result.output
    (root / "generated" / SENTINEL).write_text("Hand-written; Kiln must never touch it.\n")
    return root / "generated"


@pytest.mark.parametrize("name", _cases())
def test_error_case(
    name: str, tmp_path: Path, prior_output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES / name
    if name == "load-file-unreadable" and not UNREADABLE.is_file():
        pytest.skip(f"needs {UNREADABLE}")
    _base_tree(tmp_path)
    shutil.copytree(prior_output, tmp_path / "generated")
    for part in ("specs", "generated"):
        if (case / part).is_dir():
            _lay(case / part, tmp_path / part)
    for relative in _removals(case):
        target = tmp_path / relative
        assert target.is_file(), f"remove.txt names {relative}, which the base does not hold"
        target.unlink()
    if name in GENERATED:
        GENERATED[name](tmp_path)
    before = _snapshot(tmp_path / "generated")
    monkeypatch.chdir(tmp_path)  # paths print as specs/... and generated/...

    compiled, compile_seconds = _invoke(["compile", "--specs", "specs", "--out", "generated"])
    validated, validate_seconds = _invoke(["validate", "--specs", "specs"])

    for result in (compiled, validated):
        assert "Traceback" not in result.output
        crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
        assert not crashed, result.exc_info
    # A conflict in the output exists only when writing; validate finds nothing.
    write_only = name in WRITE_ONLY
    reporting = compiled if write_only else validated
    expected_file = case / "expected.txt"
    if REGENERATE:
        expected_file.write_text(reporting.stdout)
    expected = expected_file.read_text()
    assert expected.strip(), f"{name}: expected.txt is empty"
    assert reporting.stdout == expected
    assert compiled.stdout == expected
    if not write_only:
        # `kiln plan` and `kiln explain` resolve every model in this process first,
        # where a compile resolves each Model spec in the process that renders it:
        # both report the same.
        kept = build(Path("specs"))
        assert render(kept.diagnostics, "text") + "\n" == expected
        _counts_add_up(kept.diagnostics, len(expected.splitlines()))
    assert compiled.exit_code == 1
    assert validated.exit_code == (0 if write_only else 1)
    assert _snapshot(tmp_path / "generated") == before, "the output folder changed"
    assert max(compile_seconds, validate_seconds) < TIME_LIMIT


def _counts_add_up(diagnostics: list[Diagnostic], shown: int) -> None:
    """The count line counts the lines shown, and every format shows as many."""
    errors, warnings = map(int, re.findall(r"\d+", summary(diagnostics)))
    assert errors + warnings == shown
    assert len(json.loads(render(diagnostics, "json"))["diagnostics"]) == shown
    assert len(render(diagnostics, "github").splitlines()) == shown


def test_corpus_size() -> None:
    assert len(_cases()) >= 60


DIAGNOSTIC = re.compile(
    r"(specs|generated)/[^:\s]+:[1-9]\d*:[1-9]\d*: (error|warning)\[KILN\d{4}\]: \S.*"
)


@pytest.mark.parametrize("name", _cases())
def test_case_is_complete(name: str) -> None:
    case = CASES / name
    assert (case / "expected.txt").is_file(), f"{name} has no expected.txt"
    lines = (case / "expected.txt").read_text().splitlines()
    assert lines, f"{name}: expected.txt is empty"
    for line in lines:
        assert DIAGNOSTIC.fullmatch(line), f"{name}: not a diagnostic line: {line}"
        assert line.split("[")[1][:8] in CODES, f"{name}: undocumented code in {line}"
    assert (
        any((case / part).is_dir() for part in ("specs", "generated"))
        or _removals(case)
        or name in GENERATED
    ), f"{name} changes nothing"
