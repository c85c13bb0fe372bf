"""`kiln compile` says how much it built: everything, the affected models, or nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.cli import cli
from tests.tools import REPO_ROOT


def test_compile_reports_a_full_an_incremental_and_a_skipped_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    specs = tmp_path / "specs"
    shutil.copytree(REPO_ROOT / "specs", specs)
    args = ["compile", "--specs", str(specs), "--out", str(tmp_path / "generated")]

    def compile_once() -> str:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        return result.stderr.strip().splitlines()[-1]

    models = len(list((specs / "models").glob("*.yaml")))
    environments = 3  # local, staging, production (specs/project.yaml)
    total = models * environments
    assert compile_once().startswith(f"compiled {total} model-environment(s) into ")
    model = specs / "models" / "car-price.yaml"
    text = model.read_text(encoding="utf-8")
    assert "max: 6}" in text
    model.write_text(text.replace("max: 6}", "max: 7}"), encoding="utf-8")
    assert compile_once().startswith(f"recompiled 3 of {total} model-environment(s) into ")
    assert "is up to date: no spec, schema or Kiln file changed" in compile_once()


def test_validate_counts_the_files_compile_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both count the manifest, so the two numbers a user compares agree."""
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    specs = ["--specs", str(REPO_ROOT / "tests" / "golden" / "formats" / "specs")]
    out = tmp_path / "generated"
    validated = CliRunner().invoke(cli, ["validate", *specs])
    assert validated.exit_code == 0, validated.output
    compiled = CliRunner().invoke(cli, ["compile", *specs, "--out", str(out)])
    assert compiled.exit_code == 0, compiled.output
    written = sum(1 for p in out.rglob("*") if p.is_file())
    said = f"{written} file(s) would be generated (kiln-manifest.json included)"
    assert validated.stderr.strip().splitlines()[-1].endswith(said)
    checked = CliRunner().invoke(cli, ["compile", "--check", *specs, "--out", str(out)])
    assert checked.stderr.strip().endswith(f"is up to date ({written} files)")
