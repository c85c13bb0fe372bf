"""The security scans of `make test`: ruff's bandit rules, checkov on generated/ with its
waivers, and the dependency audit that skips, saying so, when it cannot look."""

from __future__ import annotations

import importlib.util
import stat
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from tests.tools import REPO_ROOT


def tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / ".ci" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_test_runs_the_scans_and_ruff_selects_the_security_rules() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "test: system-tools lint typecheck scan unit" in makefile
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "S" in config["tool"]["ruff"]["lint"]["select"]


def test_every_checkov_waiver_has_a_reason() -> None:
    scan = tool("scan_generated")
    waivers = scan.SAFE.load(scan.WAIVERS.read_text(encoding="utf-8"))
    assert waivers and all(str(w["reason"]).strip() for w in waivers)


def test_workloads_are_scanned_in_kinds_checkov_reads() -> None:
    scan = tool("scan_generated")
    workflow = {
        "kind": "CronWorkflow",
        "metadata": {"name": "m-monitor", "namespace": "ml"},
        "spec": {
            "workflowSpec": {
                "serviceAccountName": "m-monitor",
                "securityContext": {"runAsNonRoot": True},
                "templates": [
                    {"name": "dag", "dag": {}},
                    {"name": "run", "container": {"image": "i"}},
                ],
            }
        },
    }
    (pod,) = scan.as_pods(workflow)
    assert pod["kind"] == "Pod"
    # Labelled as Argo labels it: checkov takes a Pod without labels for one every
    # NetworkPolicy selects, and would hide a workflow step that no policy covers.
    assert pod["metadata"] == {
        "name": "m-monitor-run",
        "namespace": "ml",
        "labels": {"workflows.argoproj.io/workflow": "m-monitor"},
    }
    assert pod["spec"]["serviceAccountName"] == "m-monitor"
    assert pod["spec"]["containers"] == [{"name": "main", "image": "i"}]
    rollout = {"kind": "Rollout", "metadata": {"name": "m"}, "spec": {"template": {"spec": {}}}}
    assert scan.as_deployment(rollout)["spec"]["template"] == {"spec": {}}


def test_a_finding_is_waived_only_by_its_check_and_resource() -> None:
    scan = tool("scan_generated")
    waivers = [{"check": "CKV_K8S_8", "resource": "Pod.*", "reason": "batch"}]
    assert scan.waived({"check": "CKV_K8S_8", "resource": "Pod.ml.x"}, waivers) is not None
    assert scan.waived({"check": "CKV_K8S_8", "resource": "Deployment.ml.x"}, waivers) is None
    assert scan.waived({"check": "CKV_K8S_9", "resource": "Pod.ml.x"}, waivers) is None


def fake_pip_audit(folder: Path, report: str) -> str:
    program = folder / "pip-audit"
    program.write_text(f"#!{sys.executable}\nprint({report!r})\n", encoding="utf-8")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return str(program)


@pytest.mark.parametrize(
    ("report", "code", "said"),
    [
        (
            '{"dependencies": [{"name": "a", "version": "1", "skip_reason": "not found"}]}',
            0,
            "dependency audit skipped",
        ),
        ('{"dependencies": [{"name": "a", "version": "1", "vulns": []}]}', 0, "0 known"),
        (
            '{"dependencies": [{"name": "a", "version": "1", '
            '"vulns": [{"id": "PYSEC-1", "fix_versions": ["2"]}]}]}',
            1,
            "a 1: PYSEC-1 (fixed in 2)",
        ),
    ],
)
def test_the_dependency_audit_fails_on_a_vulnerability_and_skips_when_blind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], report: str, code: int, said: str
) -> None:
    audit = tool("audit_dependencies")
    program = fake_pip_audit(tmp_path, report)
    assert audit.main(["--pip-audit", program, "--site-packages", str(tmp_path)]) == code
    assert said in capsys.readouterr().out
