"""`kiln rollback`: a rollback prepared as one local commit of spec and output, never pushed.

Each test works in a git repository in a temporary folder holding the example specs
and their compiled output, with a bare repository as `origin` to prove nothing is pushed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from compiler.api import compile_tree
from compiler.cli import cli
from compiler.load import load_text
from compiler.rollback import set_integer
from tests.gitrepo import GIT_IDENTITY, add_version_two, edit, git
from tests.tools import REPO_ROOT

MODEL = "specs/models/car-loan-default.yaml"


def compile_and_commit(repo: Path, message: str) -> str:
    result = compile_tree(repo / "specs", repo / "generated")
    assert result.ok, result.diagnostics
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def kiln(repo: Path, *args: str) -> Result:
    specs = ["--specs", str(repo / "specs"), "--out", str(repo / "generated")]
    return CliRunner().invoke(cli, [*args, *specs])


def generated(repo: Path) -> dict[str, bytes]:
    root = repo / "generated"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(autouse=True)
def identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Commits: v1 (version 1 served), v2 (version 2 added and served everywhere)."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO_ROOT / "specs", root / "specs")
    git(root, "init", "-q", "-b", "main")
    compile_and_commit(root, "v1")
    add_version_two(root)
    compile_and_commit(root, "serve version 2")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    git(root, "remote", "add", "origin", str(origin))
    git(root, "push", "-q", "origin", "main")
    return root


def assert_committed_and_not_pushed(repo: Path, commits_before: int) -> None:
    assert git(repo, "status", "--porcelain") == ""
    assert int(git(repo, "rev-list", "--count", "HEAD")) == commits_before + 1
    assert git(repo, "rev-parse", "origin/main") == git(repo, "rev-parse", "HEAD~1")
    remote = git(repo, "ls-remote", "origin", "main").split()[0]
    assert remote == git(repo, "rev-parse", "HEAD~1").strip()


def served(repo: Path, environment: str) -> str:
    config = repo / f"generated/{environment}/car-loan-default/triton/config.pbtxt"
    text = config.read_text()
    return text.split("versions: ")[1].split("\n")[0]


def test_to_a_version_in_one_environment(repo: Path) -> None:
    before = (repo / MODEL).read_text()
    result = kiln(repo, "rollback", "car-loan-default", "--env", "production", "--to", "1")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("committed ")
    assert "Nothing was pushed." in result.output
    assert_committed_and_not_pushed(repo, 2)
    assert git(repo, "log", "-1", "--format=%s") == (
        "Roll back car-loan-default in production to version 1\n"
    )
    body = git(repo, "log", "-1", "--format=%b")
    assert "Sets spec.environments.production.serving.version to 1 (was 2)" in body
    assert "Prepared by `kiln rollback car-loan-default --env production --to 1`." in body
    # Only the production overlay was added; every other byte of the spec, comments too, kept.
    after = (repo / MODEL).read_text()
    assert after == before + "    production:\n      serving: {version: 1}\n"
    assert (served(repo, "production"), served(repo, "staging")) == ("1", "2")
    # The commit holds the spec and its output together, and the output is up to date.
    changed = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert MODEL in changed
    assert "generated/production/car-loan-default/triton/config.pbtxt" in changed
    assert "generated/staging/car-loan-default/triton/config.pbtxt" not in changed
    check = compile_tree(repo / "specs", repo / "generated")
    assert check.report is not None and not check.report.written


def test_to_a_version_in_an_environment_with_a_flow_overlay(repo: Path) -> None:
    result = kiln(repo, "rollback", "car-loan-default", "--env", "staging", "--to", "1")
    assert result.exit_code == 0, result.output
    assert "      serving: {version: 1, replicas: {min: 1, max: 2}}\n" in (repo / MODEL).read_text()
    assert (served(repo, "production"), served(repo, "staging")) == ("2", "1")


def test_to_a_version_everywhere(repo: Path) -> None:
    before = (repo / MODEL).read_text()
    result = kiln(repo, "rollback", "car-loan-default", "--to", "1")
    assert result.exit_code == 0, result.output
    assert (repo / MODEL).read_text() == before.replace(
        "  serving:\n    version: 2", "  serving:\n    version: 1"
    )
    assert git(repo, "log", "-1", "--format=%s") == "Roll back car-loan-default to version 1\n"
    assert {served(repo, e) for e in ("local", "staging", "production")} == {"1"}


def test_an_environment_that_pins_its_own_version_is_named(repo: Path) -> None:
    assert (
        kiln(repo, "rollback", "car-loan-default", "--env", "production", "--to", "1").exit_code
        == 0
    )
    result = kiln(repo, "rollback", "car-loan-default", "--to", "1")
    assert result.exit_code == 0, result.output
    assert "Environments that set their own serving.version keep it: production (1)." in (
        result.output
    )


def test_to_a_revision(repo: Path) -> None:
    first = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    result = kiln(repo, "rollback", "car-loan-default", "--to", "HEAD~1")
    assert result.exit_code == 0, result.output
    assert_committed_and_not_pushed(repo, 2)
    assert git(repo, "show", f"{first}:{MODEL}") == (repo / MODEL).read_text()
    assert git(repo, "log", "-1", "--format=%s") == (
        "Roll back car-loan-default to its spec at HEAD~1\n"
    )
    assert {served(repo, e) for e in ("local", "staging", "production")} == {"1"}


def test_revert_the_last_change(repo: Path) -> None:
    git(repo, "checkout", "-q", "HEAD~1", "--", "generated")
    v1 = generated(repo)
    git(repo, "checkout", "-q", "HEAD", "--", "generated")
    last = git(repo, "rev-parse", "HEAD").strip()
    result = kiln(repo, "rollback", "car-loan-default")
    assert result.exit_code == 0, result.output
    assert_committed_and_not_pushed(repo, 2)
    assert git(repo, "log", "-1", "--format=%s") == 'Revert "serve version 2"\n'
    assert f"This reverts commit {last}." in git(repo, "log", "-1", "--format=%b")
    assert generated(repo) == v1
    # The reverted commit also added the ONNX file of version 2: the message says so.
    assert "The reverted commit also changed: specs/artifacts/models/car-loan-default/2/" in (
        result.output
    )


def test_a_revert_whose_output_conflicts_is_settled_by_compiling(repo: Path) -> None:
    # A later change to another model rewrites neighbouring lines of the manifest, so
    # reverting "serve version 2" conflicts there; compiling settles it.
    edit(
        repo,
        "specs/models/car-price.yaml",
        "replicas: {min: 2, max: 6}",
        "replicas: {min: 2, max: 5}",
    )
    compile_and_commit(repo, "car-price replicas")
    result = kiln(repo, "rollback", "car-loan-default")
    assert result.exit_code == 0, result.output
    assert git(repo, "log", "-1", "--format=%s") == 'Revert "serve version 2"\n'
    assert git(repo, "status", "--porcelain") == ""
    assert "<<<<<<<" not in (repo / "generated/kiln-manifest.json").read_text()
    assert {served(repo, e) for e in ("local", "staging", "production")} == {"1"}
    assert "max: 5" in (repo / "specs/models/car-price.yaml").read_text()
    check = compile_tree(repo / "specs", repo / "generated")
    assert check.report is not None and not check.report.written


def test_a_revert_that_does_not_compile_changes_nothing(repo: Path) -> None:
    # After "serve version 2", the ONNX file of version 1 goes; reverting would serve it.
    shutil.rmtree(repo / "specs/artifacts/models/car-loan-default/1")
    git(repo, "commit", "-q", "-am", "drop the file of version 1")
    head = git(repo, "rev-parse", "HEAD")
    before = generated(repo)
    result = kiln(repo, "rollback", "car-loan-default")
    assert result.exit_code == 1, result.output
    assert "KILN1701" in result.output
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""
    assert generated(repo) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--to", "1"], "there is no Model named 'nope' in the specs (models: "),
        (["car-loan-default", "--to", "7"], "car-loan-default has no version 7 (versions: 1, 2)"),
        (["car-loan-default", "--env", "prod", "--to", "1"], "unknown environment 'prod'"),
        (["car-loan-default", "--to", "2"], "car-loan-default already serves version 2"),
        (["car-loan-default", "--to", "no-such-ref"], "unknown revision 'no-such-ref'"),
        (["car-loan-default", "--to", "HEAD"], "is already as it was at HEAD"),
    ],
)
def test_refusals(repo: Path, args: list[str], message: str) -> None:
    head = git(repo, "rev-parse", "HEAD")
    result = kiln(repo, "rollback", *args)
    assert result.exit_code == 1, result.output
    assert "refused: " in result.output
    assert message in result.output
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""


def test_env_needs_a_version(repo: Path) -> None:
    result = kiln(repo, "rollback", "car-loan-default", "--env", "staging", "--to", "HEAD~1")
    assert result.exit_code == 2
    assert "--env goes with --to VERSION" in result.output


@pytest.mark.parametrize("dirt", ["tracked", "untracked spec", "staged"])
def test_uncommitted_changes_are_refused(repo: Path, dirt: str) -> None:
    if dirt == "tracked":
        edit(repo, "specs/models/car-price.yaml", "owner:", "owner:  ")
    elif dirt == "untracked spec":
        (repo / "specs/models/draft.yaml").write_text("kind: Model\n")
    else:
        (repo / "notes.txt").write_text("x\n")
        git(repo, "add", "notes.txt")
    result = kiln(repo, "rollback", "car-loan-default", "--to", "1")
    assert result.exit_code == 1
    assert "the working tree has uncommitted changes" in result.output
    assert int(git(repo, "rev-list", "--count", "HEAD")) == 2


def test_untracked_files_elsewhere_are_fine(repo: Path) -> None:
    (repo / "plan.md").write_text("a plan\n")
    result = kiln(repo, "rollback", "car-loan-default", "--to", "1")
    assert result.exit_code == 0, result.output
    assert (repo / "plan.md").exists()
    assert "plan.md" not in git(repo, "show", "--name-only", "--format=", "HEAD")


def test_a_rollback_that_does_not_compile_changes_nothing(repo: Path) -> None:
    edit(repo, MODEL, "  target: repaid", "  target: repaid\n  bogus: 1")
    git(repo, "commit", "-q", "-am", "broken")
    edit(repo, MODEL, "  target: repaid\n  bogus: 1", "  target: repaid")
    compile_and_commit(repo, "fixed")
    head = git(repo, "rev-parse", "HEAD")
    result = kiln(repo, "rollback", "car-loan-default", "--to", "HEAD~1")
    assert result.exit_code == 1
    assert "the rolled-back specs do not compile; nothing was changed" in result.output
    assert "error[KILN" in result.output
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""


def test_a_restored_spec_whose_model_file_is_gone_changes_nothing(repo: Path) -> None:
    # The last change to the spec removed version 1 while nothing serves it; its revert
    # would need the ONNX file of version 1 that a later commit deleted.
    shutil.rmtree(repo / "specs/artifacts/models/car-loan-default/1")
    edit(
        repo,
        MODEL,
        "    - version: 1\n      artifact:\n        uri: car-loan-default/1/model.onnx\n"
        "        sha256: 905bf2965a39c334beb2be804dd0a7dd58c6accbf6f1086e8ac7dffa43d450ca\n"
        "      metrics: {roc_auc: 0.9704}\n",
        "",
    )
    compile_and_commit(repo, "drop version 1")
    head = git(repo, "rev-parse", "HEAD")
    before = generated(repo)
    result = kiln(repo, "rollback", "car-loan-default", "--to", "HEAD~2")
    assert result.exit_code == 1, result.output
    assert "KILN1701" in result.output
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""
    assert generated(repo) == before


# ---------------------------------------------------------------------------
# The text edit: one integer changed or added, everything else byte for byte


def edited(text: str, path: tuple[str | int, ...], value: int) -> str | None:
    document, problems = load_text("specs/m.yaml", text.encode())
    assert document is not None and not problems
    return set_integer(text, document, path, value)


SPEC = """\
# a comment that stays
kind: Model
spec:
  serving:
    version: 2   # the one we serve
    max_batch_size: 8
  environments:
    staging:
      serving:
        replicas: {min: 1}
    production: {serving: {max_batch_size: 4}}
    empty: {}
"""


def test_replace_keeps_the_comment() -> None:
    out = edited(SPEC, ("spec", "serving", "version"), 1)
    assert out == SPEC.replace("version: 2   # the one", "version: 1   # the one")


def test_insert_into_a_block_mapping() -> None:
    out = edited(SPEC, ("spec", "environments", "staging", "serving", "version"), 1)
    assert out == SPEC.replace(
        "        replicas: {min: 1}\n", "        replicas: {min: 1}\n        version: 1\n"
    )


def test_insert_into_flow_mappings() -> None:
    out = edited(SPEC, ("spec", "environments", "production", "serving", "version"), 1)
    assert out == SPEC.replace(
        "{serving: {max_batch_size: 4}}", "{serving: {version: 1, max_batch_size: 4}}"
    )
    out = edited(SPEC, ("spec", "environments", "empty", "serving", "version"), 1)
    assert out == SPEC.replace("empty: {}", "empty: {serving: {version: 1}}")


def test_insert_a_new_environment_and_a_new_environments_block() -> None:
    out = edited(SPEC, ("spec", "environments", "qa", "serving", "version"), 3)
    assert out == SPEC + "    qa:\n      serving: {version: 3}\n"
    bare = SPEC.split("  environments:")[0]
    out = edited(bare, ("spec", "environments", "qa", "serving", "version"), 3)
    assert out == bare + "  environments:\n    qa:\n      serving: {version: 3}\n"


def test_a_block_scalar_at_the_end_is_not_broken() -> None:
    text = "spec:\n  serving:\n    version: 2\n  notes: |\n    line one\n    line two\n"
    out = edited(text, ("spec", "environments", "qa", "serving", "version"), 1)
    assert out is not None
    document, problems = load_text("m.yaml", out.encode())
    assert document is not None and not problems
    assert document.data["spec"]["notes"] == "line one\nline two\n"
    assert document.data["spec"]["environments"] == {"qa": {"serving": {"version": 1}}}


def test_an_edit_that_cannot_be_made_safely_is_refused() -> None:
    text = "spec:\n  serving: {version: '2'}\n"  # a string, not an integer
    assert edited(text, ("spec", "serving", "version"), 1) is None


def test_a_model_with_no_version_yet_has_nothing_to_roll_back_to(repo: Path) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    path = repo / "specs" / "models" / "car-price.yaml"
    document = yaml.load(path.read_text(encoding="utf-8"))
    document["metadata"]["name"] = "fresh"
    del document["spec"]["versions"]
    del document["spec"]["serving"]["version"]
    with (repo / "specs" / "models" / "fresh.yaml").open("w", encoding="utf-8") as stream:
        yaml.dump(document, stream)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a model before its first version")
    head = git(repo, "rev-parse", "HEAD")
    result = kiln(repo, "rollback", "fresh", "--to", "1")
    assert result.exit_code == 1, result.output
    assert "fresh has no version yet" in result.output and "kiln run fresh --local" in result.output
    assert git(repo, "rev-parse", "HEAD") == head
