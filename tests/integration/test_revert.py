"""`git revert` is the rollback, and merges that conflict in generated/ are settled by compiling.

Acceptance: compile tree A and commit; change the specs to B (a new version served
through the 10% canary, two GPUs per pod, a lower alert threshold), compile and
commit; `git revert` the change and compile: the output is A's, byte for byte. The
plans of A -> B and of B -> the revert read as exact opposites.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.api import compile_tree
from compiler.cli import cli
from compiler.emit import owned_files
from compiler.plan import plan_change
from tests.gitrepo import add_version_two, edit, git

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "specs/models/car-loan-default.yaml"
CANARY = "canary through Istio: 10% for 10m, analysis, 50% for 30m, then 100%"


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def compile_into(repo: Path, out: Path | None = None) -> None:
    result = compile_tree(repo / "specs", out or repo / "generated")
    assert result.ok, [d.text() for d in result.diagnostics]


def plan_lines(repo: Path, base: str) -> str:
    result = CliRunner().invoke(
        cli, ["plan", "--base", base, "--specs", str(repo / "specs"), "--format", "text"]
    )
    assert result.exit_code == 0, result.output
    return result.output


def change_to_b(repo: Path) -> None:
    add_version_two(repo)
    edit(repo, MODEL, "resources: {gpus: 1,", "resources: {gpus: 2,")
    edit(repo, MODEL, "above: 80, for: 10m", "above: 70, for: 10m")


def test_revert_restores_a_byte_for_byte_and_the_plans_are_opposites(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "specs", repo / "specs")
    git(repo, "init", "-q", "-b", "main")
    compile_into(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "A")
    a = git(repo, "rev-parse", "HEAD").strip()
    output_a = tree(repo / "generated")

    change_to_b(repo)
    compile_into(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "B: serve version 2 on two GPUs, alert earlier")
    b = git(repo, "rev-parse", "HEAD").strip()
    forward = plan_change(repo / "specs", a)
    forward_text = plan_lines(repo, a)

    git(repo, "revert", "--no-edit", "HEAD")
    assert tree(repo / "generated") == output_a  # the revert restored the committed output
    compile_into(repo)
    assert tree(repo / "generated") == output_a  # and compiling the reverted specs agrees
    compile_into(repo, tmp_path / "fresh")
    assert tree(tmp_path / "fresh") == output_a  # from nothing, too
    assert git(repo, "status", "--porcelain") == ""
    backward = plan_change(repo / "specs", b)
    backward_text = plan_lines(repo, b)

    alert_80 = "latency_p99_ms above 80 for 10m, critical, to ml-oncall"
    alert_70 = "latency_p99_ms above 70 for 10m, critical, to ml-oncall"
    v2 = "s3://acme-models/car-loan-default/2/model.onnx, sha256 905bf2965a39, roc_auc 0.9712"
    for environment in ("staging", "production"):
        assert forward.sentences("car-loan-default", environment) == [
            f"serving version 1 -> 2 via {CANARY}",
            "GPUs per pod 1 -> 2",
            "instances per pod 2 x GPU on GPUs 0 -> 2 x GPU on GPUs 0, 1",
            f"alert slow: {alert_80} -> {alert_70}",
            # The example's batch jobs score with the served version (no version of their own).
            "batch.backfill.version: 1 -> 2",
            "batch.nightly.version: 1 -> 2",
            f"version 2 added: {v2}",
        ]
        assert backward.sentences("car-loan-default", environment) == [
            f"serving version 2 -> 1 via {CANARY}",
            "GPUs per pod 2 -> 1",
            "instances per pod 2 x GPU on GPUs 0, 1 -> 2 x GPU on GPUs 0",
            f"alert slow: {alert_70} -> {alert_80}",
            "batch.backfill.version: 2 -> 1",
            "batch.nightly.version: 2 -> 1",
            f"version 2 removed (was {v2})",
        ]
    for text in (forward_text, backward_text):
        assert "staging, production:" in text
    assert f"- serving version 1 -> 2 via {CANARY}" in forward_text
    assert f"- serving version 2 -> 1 via {CANARY}" in backward_text

    # Every change, each way, is the other's reversed: same topics, old and new swapped.
    def plain(changes: list[object]) -> set[tuple[str, str | None, str | None]]:
        return {(c.topic, c.old, c.new) for c in changes}  # type: ignore[attr-defined]

    assert forward.changes.keys() == backward.changes.keys()
    for key, changes in forward.changes.items():
        assert plain([c.reversed() for c in changes]) == plain(backward.changes[key])
    files_forward = {
        (f.folder, tuple(f.added), tuple(f.removed), tuple(f.changed)) for f in forward.folders
    }
    files_backward = {
        (f.folder, tuple(f.removed), tuple(f.added), tuple(f.changed)) for f in backward.folders
    }
    assert files_forward == files_backward


@pytest.mark.parametrize("style", ["merge", "diff3", "zdiff3"])
def test_compile_settles_a_merge_that_conflicted_in_the_output(tmp_path: Path, style: str) -> None:
    """Two branches change the same model; git conflicts in the spec, the output and the
    manifest. The person resolves the spec only; `kiln compile` regenerates the rest."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "specs", repo / "specs")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "merge.conflictStyle", style)
    compile_into(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    for branch, replicas in (("six", "6"), ("eight", "8")):
        git(repo, "checkout", "-q", "-b", branch, "main")
        edit(repo, MODEL, "replicas: {min: 2, max: 4}", f"replicas: {{min: 2, max: {replicas}}}")
        compile_into(repo)
        git(repo, "commit", "-q", "-am", f"{replicas} replicas")
    git(repo, "merge", "-q", "six", check=False)
    conflicted = git(repo, "diff", "--name-only", "--diff-filter=U").split()
    assert MODEL in conflicted
    assert "generated/kiln-manifest.json" in conflicted
    assert any(p.endswith("scaledobject-car-loan-default.yaml") for p in conflicted)
    outputs = {p.removeprefix("generated/") for p in conflicted if p.startswith("generated/")}
    assert outputs - {"kiln-manifest.json"} <= owned_files(repo / "generated").keys()

    # The person resolves the spec (six replicas) and compiles; nothing else by hand.
    git(repo, "checkout", "-q", "--theirs", "--", MODEL)
    assert "replicas: {min: 2, max: 6}" in (repo / MODEL).read_text()
    result = compile_tree(repo / "specs", repo / "generated")
    assert result.ok, [d.text() for d in result.diagnostics]
    output = tree(repo / "generated")
    assert not any(b"<<<<<<<" in data or b">>>>>>>" in data for data in output.values())
    compile_into(repo, tmp_path / "fresh")
    assert output == tree(tmp_path / "fresh")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-edit")
    check = CliRunner().invoke(
        cli,
        ["compile", "--check", "--specs", str(repo / "specs"), "--out", str(repo / "generated")],
    )
    assert check.exit_code == 0, check.output


def test_a_conflicted_manifest_owns_what_either_side_listed(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    out.mkdir()
    (out / "kiln-manifest.json").write_text(
        '{\n  "files": {\n    "a.yaml": {},\n'
        "<<<<<<< HEAD\n"
        '    "b.yaml": {}\n'
        "||||||| base\n"
        '    "old.yaml": {}\n'
        "=======\n"
        '    "c.yaml": {}\n'
        ">>>>>>> theirs\n"
        "  }\n}\n"
    )
    assert set(owned_files(out)) == {"a.yaml", "b.yaml", "c.yaml", "old.yaml"}
    (out / "kiln-manifest.json").write_text("<<<<<<< HEAD\nnot json\n=======\n>>>>>>> x\n")
    assert owned_files(out) == {}
