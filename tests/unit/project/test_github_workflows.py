"""The GitHub Actions workflows and the pre-commit hook: valid, least-privilege, pinned,
and every `kiln` command they run works here, on a sample change in a git repository.

The workflow JSON Schema is the one the `check-jsonschema` package vendors (from
SchemaStore). Without that package the schema test skips with a reason, except in
CI (CI=true), where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from compiler.api import compile_tree
from compiler.plan import MARKER
from tests.tools import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
KILN = Path(sys.executable).parent / "kiln"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# Values of the expressions the kiln steps use, as GitHub would set them for a pull
# request into main.
LOCAL_VALUES = {"github.base_ref": "main"}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Kiln Test",
    "GIT_AUTHOR_EMAIL": "kiln@example.invalid",
    "GIT_COMMITTER_NAME": "Kiln Test",
    "GIT_COMMITTER_EMAIL": "kiln@example.invalid",
}


def load(path: Path) -> dict[str, Any]:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in workflow["jobs"].items() for step in job["steps"]]


def test_there_is_a_workflow() -> None:
    assert [p.name for p in WORKFLOWS] == ["kiln.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_github_schema(path: Path) -> None:
    try:
        import check_jsonschema
        import jsonschema
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("check-jsonschema is not installed (it belongs in the dev extra)")
    vendored = resources.files(check_jsonschema) / "builtin_schemas/vendor/github-workflows.json"
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(load(path)), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}
    writers = {
        name: job["permissions"]
        for name, job in workflow["jobs"].items()
        if any(v == "write" for v in job.get("permissions", {}).values())
    }
    assert writers == {"plan": {"contents": "read", "pull-requests": "write"}}
    # Triggers that run with the base repository's secrets on forked code are not used.
    assert set(workflow["on"]) == {"pull_request", "push"}
    assert workflow["on"]["push"] == {"branches": ["main"]}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_with_the_version_in_a_comment(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    used = [line for line in lines if re.match(r"\s*(- )?uses:", line)]
    assert used
    for line in used:
        reference, _, comment = line.split("uses:", 1)[1].partition("#")
        assert PINNED.match(reference.strip()), line
        assert re.fullmatch(r"\s*v\d+(\.\d+)*\s*", comment), line
    for _, step in steps(load(path)):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_timeouts_and_concurrency(path: Path) -> None:
    workflow = load(path)
    for name, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 60, name
    concurrency = workflow["concurrency"]
    assert "github.event.pull_request.number" in concurrency["group"]
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_is_pasted_into_a_script(path: Path) -> None:
    """Values reach scripts through `env:`, so that no input can inject shell code."""
    for job, step in steps(load(path)):
        assert "${{" not in step.get("run", ""), (job, step.get("name"))


def test_the_plan_comment() -> None:
    workflow = load(REPO_ROOT / ".github/workflows/kiln.yml")
    plan = workflow["jobs"]["plan"]
    assert plan["if"] == "github.event_name == 'pull_request'"
    checkout = plan["steps"][0]
    assert checkout["with"]["fetch-depth"] == 0  # the base branch is needed
    post = next(s for s in plan["steps"] if "github-script" in str(s.get("uses")))
    assert "!github.event.pull_request.head.repo.fork" in post["if"]
    script = post["with"]["script"]
    assert f"const marker = '{MARKER}';" in script  # the first line of every plan
    assert "updateComment" in script and "createComment" in script
    fork = next(s for s in plan["steps"] if "fork" in s.get("name", ""))
    assert "github.event.pull_request.head.repo.fork" in fork["if"]
    assert "GITHUB_STEP_SUMMARY" in fork["run"]


def test_validate_writes_every_diagnostic_to_the_summary() -> None:
    workflow = load(REPO_ROOT / ".github/workflows/kiln.yml")
    validate = next(s for _, s in steps(workflow) if "kiln validate" in s.get("run", ""))
    assert "kiln validate --format github" in validate["run"]
    assert '>> "$GITHUB_STEP_SUMMARY"' in validate["run"]


def test_tests_run_on_pull_requests_and_main() -> None:
    workflow = load(REPO_ROOT / ".github/workflows/kiln.yml")
    test = workflow["jobs"]["test"]
    assert "if" not in test
    assert any(s.get("run", "") == "bash .ci/run" for s in test["steps"])
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    check = workflow["jobs"]["check"]
    assert "if" not in check
    assert any(s.get("run") == "kiln compile --check" for s in check["steps"])


# ---------------------------------------------------------------------------
# The kiln commands of the workflow, run here on a sample pull request


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        env={**os.environ, **GIT_IDENTITY},
    )


def sample_pull_request(root: Path, compiled: bool = True) -> Path:
    """main: the example platform, compiled; checked out: a change on top of it."""
    shutil.copytree(REPO_ROOT / "specs", root / "specs")
    git(root, "init", "-q", "-b", "main")
    assert compile_tree(root / "specs", root / "generated").ok
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "platform")
    git(root, "update-ref", "refs/remotes/origin/main", "HEAD")  # what checkout fetches
    git(root, "checkout", "-q", "-b", "change")
    model = root / "specs/models/car-loan-default.yaml"
    model.write_text(model.read_text().replace("resources: {gpus: 1,", "resources: {gpus: 2,"))
    if compiled:
        assert compile_tree(root / "specs", root / "generated").ok
    git(root, "commit", "-q", "-am", "two GPUs per pod")
    return root


def kiln_steps() -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    found = []
    for path in WORKFLOWS:
        workflow = load(path)
        for job, step in steps(workflow):
            if "kiln " not in step.get("run", ""):
                continue
            environment = {**workflow.get("env", {}), **step.get("env", {})}
            found.append((job, step, {k: local(str(v)) for k, v in environment.items()}))
    return found


def local(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        expression = match.group(1)
        assert expression in LOCAL_VALUES, f"no local value for ${{{{ {expression} }}}}"
        return LOCAL_VALUES[expression]

    return EXPRESSION.sub(replace, value)


def run_step(repo: Path, step: dict[str, Any], env: dict[str, str], summary: Path) -> int:
    """As GitHub runs a `run:` step: bash with -e and pipefail, kiln on PATH."""
    assert KILN.exists(), f"{KILN} is missing: install Kiln (`pip install -e .`)"
    environment = {
        **os.environ,
        **env,
        "PATH": f"{KILN.parent}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_STEP_SUMMARY": str(summary),
        "CI": "true",
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=repo,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return done.returncode


def test_the_kiln_steps_run_locally(tmp_path: Path) -> None:
    repo = sample_pull_request(tmp_path / "repo")
    summary = tmp_path / "summary.md"
    found = kiln_steps()
    commands = [line.strip() for _, s, _ in found for line in s["run"].splitlines()]
    assert any(c.startswith("kiln validate --format github") for c in commands)
    assert "kiln compile --check" in commands
    assert any(c.startswith('kiln plan --base "origin/$BASE_REF"') for c in commands)
    for job, step, env in found:
        assert run_step(repo, step, env, summary) == 0, (job, step.get("name"))
    plan = (repo / "plan.md").read_text()
    assert plan.startswith(MARKER + "\n")
    assert "- GPUs per pod 1 -> 2" in plan
    assert len(plan) <= 65_536
    written = summary.read_text()
    assert "### kiln validate" in written
    assert "- GPUs per pod 1 -> 2" in written  # the plan is in the job summary too


def test_a_stale_output_fails_the_check_step(tmp_path: Path) -> None:
    repo = sample_pull_request(tmp_path / "repo", compiled=False)
    summary = tmp_path / "summary.md"
    results = {
        step.get("name"): run_step(repo, step, env, summary) for _, step, env in kiln_steps()
    }
    assert results["Validate the specs"] == 0
    assert results["Check that generated/ is up to date"] == 1
    assert results["Plan the change"] == 0


def test_invalid_specs_fail_validation_and_still_fill_the_summary(tmp_path: Path) -> None:
    repo = sample_pull_request(tmp_path / "repo")
    model = repo / "specs/models/car-loan-default.yaml"
    model.write_text(
        model.read_text().replace("    version: 1\n    max_batch", "    version: 3\n    max_batch")
    )
    summary = tmp_path / "summary.md"
    results = {
        step.get("name"): run_step(repo, step, env, summary) for _, step, env in kiln_steps()
    }
    assert results["Validate the specs"] == 1
    assert results["Plan the change"] == 1
    written = summary.read_text()
    assert "error[KILN1307]" in written
    assert "The specs do not compile" in (repo / "plan.md").read_text()


# ---------------------------------------------------------------------------
# The pre-commit hook


def test_pre_commit_hook(tmp_path: Path) -> None:
    hooks = YAML(typ="safe").load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hooks == [
        {
            "id": "kiln-compile-check",
            "name": "kiln compile --check",
            "description": hooks[0]["description"],
            "entry": "kiln compile --check",
            "language": "python",
            "pass_filenames": False,
            "files": "^specs/",
        }
    ]
    assert re.search(hooks[0]["files"], "specs/models/car-price.yaml")
    assert not re.search(hooks[0]["files"], "docs/specs/x.md")
    repo = sample_pull_request(tmp_path / "repo", compiled=False)
    entry = [str(KILN), *hooks[0]["entry"].split()[1:]]
    stale = subprocess.run(entry, cwd=repo, capture_output=True, check=False)
    assert stale.returncode == 1
    assert compile_tree(repo / "specs", repo / "generated").ok
    assert subprocess.run(entry, cwd=repo, capture_output=True, check=False).returncode == 0


def test_gitattributes_mark_the_output_generated_but_diffable() -> None:
    text = (REPO_ROOT / ".gitattributes").read_text()
    rules = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    generated = [r for r in rules if r[0] == "generated/**"]
    assert ["generated/**", "linguist-generated=true"] in generated
    assert not any("-diff" in r or "binary" in r for r in generated)
