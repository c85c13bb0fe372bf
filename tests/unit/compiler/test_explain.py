"""`kiln explain PATH`: which spec files and lines produced a generated file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from compiler.api import compile_tree
from compiler.cli import cli
from compiler.explain import block_lines
from compiler.load import load_text
from tests.tools import REPO_ROOT

MODEL = "specs/models/car-loan-default.yaml"


def kiln(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def line_of(text: str, start: str) -> int:
    """1-based number of the first line that starts with `start`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(start))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "specs", tmp_path / "specs")
    result = compile_tree(tmp_path / "specs", tmp_path / "generated")
    assert result.ok, result.diagnostics
    return tmp_path


def explain(project: Path, path: str | Path, *extra: str) -> Result:
    return kiln(
        "explain", path, "--specs", project / "specs", "--out", project / "generated", *extra
    )


def test_a_rollout_comes_from_the_rollout_block_and_the_overlay(project: Path) -> None:
    text = (project / MODEL).read_text()
    rollout = line_of(text, "  rollout:")
    training = line_of(text, "  training:")
    overlay = line_of(text, "    staging:")
    replicas = line_of(text, "      serving: {replicas:")
    target = project / "generated/staging/car-loan-default/rollout-car-loan-default.yaml"
    result = explain(project, target)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == target.as_posix()
    assert lines[1] == (
        f"  produced by  {MODEL}:{rollout}-{training - 1}  spec.rollout  (Model car-loan-default)"
    )
    assert lines[2] == (f"  overlay      {MODEL}:{overlay}-{replicas}  spec.environments.staging")
    assert lines[3] == f"               line {replicas}: serving.replicas"
    assert lines[4] == (
        "  also from    specs/featuresets/car-loan-applicant.yaml  "
        "(FeatureSet car-loan-applicant@1)"
    )
    assert lines[5] == "               specs/project.yaml  (Project acme-ml)"
    assert lines[6:] == [
        "served versions of car-loan-default in staging:",
        "  version 1  not signed: no artifact.signature, no provenance",
    ]


def test_production_has_no_overlay(project: Path) -> None:
    result = explain(project, "production/car-loan-default/rollout-car-loan-default.yaml")
    assert result.exit_code == 0, result.output
    assert "  overlay " not in result.output
    assert "spec.rollout" in result.output


def test_an_overlay_that_overrides_the_origin_is_marked(project: Path) -> None:
    result = explain(project, "staging/car-loan-default/triton/config.pbtxt")
    assert result.exit_code == 0, result.output
    text = (project / MODEL).read_text()
    serving = line_of(text, "  serving:")
    rollout = line_of(text, "  rollout:")
    assert f"produced by  {MODEL}:{serving}-{rollout - 1}  spec.serving" in result.output
    assert "serving.replicas  (overrides part of spec.serving)" in result.output


def test_paths_relative_to_the_output_folder(project: Path) -> None:
    by_out = explain(project, "staging/car-loan-default/rollout-car-loan-default.yaml")
    full = explain(
        project, project / "generated/staging/car-loan-default/rollout-car-loan-default.yaml"
    )
    assert by_out.exit_code == full.exit_code == 0
    assert by_out.output == full.output


def test_a_path_under_the_default_output_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    result = kiln("explain", "generated/local/car-price/pipeline.json")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("generated/local/car-price/pipeline.json\n")
    assert "produced by  specs/models/car-price.yaml:" in result.output
    assert "spec.training  (Model car-price)" in result.output


def test_argo_cd_objects_come_from_the_project_and_every_model(project: Path) -> None:
    result = explain(project, "argocd/applicationset-acme-ml.yaml")
    assert result.exit_code == 0, result.output
    git_line = line_of((project / "specs/project.yaml").read_text(), "  git:")
    assert f"produced by  specs/project.yaml:{git_line}  spec.git  (Project acme-ml)" in (
        result.output
    )
    assert "  also from    specs/models/car-loan-default.yaml  (Model car-loan-default)" in (
        result.output
    )
    assert "               specs/models/car-price.yaml  (Model car-price)" in result.output


def test_the_manifest(project: Path) -> None:
    result = explain(project, "kiln-manifest.json")
    assert result.exit_code == 0
    assert "Kiln's list of the files it owns" in result.output


def test_a_file_kiln_did_not_generate(project: Path) -> None:
    result = explain(project, "staging/car-loan-default/rollout-car-loan-defaul.yaml")
    assert result.exit_code == 1
    assert "Kiln did not generate staging/car-loan-default/rollout-car-loan-defaul.yaml" in (
        result.output
    )
    assert "did you mean" in result.output
    assert "rollout-car-loan-default.yaml?" in result.output
    outside = explain(project, project / "specs/project.yaml")
    assert outside.exit_code == 1
    assert "Kiln did not generate" in outside.output


def test_a_file_no_spec_produces_any_more(project: Path) -> None:
    (project / "specs/models/car-price.yaml").unlink()
    result = explain(project, "production/car-price/rollout-car-price.yaml")
    assert result.exit_code == 1
    assert "was written by an earlier compile, but no spec produces it any more" in result.output


def test_specs_that_do_not_compile(project: Path) -> None:
    path = project / MODEL
    path.write_text(
        path.read_text().replace("    version: 1\n    max_batch", "    version: 5\n    max_batch")
    )
    result = explain(project, "production/car-price/rollout-car-price.yaml")
    assert result.exit_code == 1
    assert "error[KILN1307]" in result.output


def test_block_lines() -> None:
    text = (
        "apiVersion: kiln/v1alpha1\n"  # 1
        "spec:\n"  # 2
        "  flow: {a: 1, b: [1, 2]}\n"  # 3
        "  block:\n"  # 4
        "    - name: x\n"  # 5
        "      deep:\n"  # 6
        "        value: 3\n"  # 7
        "    - {name: y}\n"  # 8
        "  after: 1\n"  # 9
    )
    document, problems = load_text("specs/x.yaml", text.encode())
    assert document is not None and not problems
    assert block_lines(document, ("spec", "flow")) == (3, 3)
    assert block_lines(document, ("spec", "block")) == (4, 8)
    assert block_lines(document, ("spec", "block", 0)) == (5, 7)
    assert block_lines(document, ("spec",)) == (2, 9)
    assert block_lines(document, ("spec", "missing")) is None
