"""Scan `generated/` with checkov, a policy scanner for Kubernetes manifests, and fail on
any finding that `.ci/checkov-waivers.yaml` does not waive with a reason.

    python .ci/scan_generated.py [--checkov PATH] [--out generated]

checkov checks the pods of workload kinds it knows (Deployment, Pod, ...); Kiln's pods
live in Argo Rollouts and Argo Workflows, which it does not read. So each Rollout's pod
template is scanned as a Deployment's, and each workflow step as a Pod with the
workflow's pod-level settings (service account, security context, volumes), in a
scratch copy; the other files are scanned as they are. A waiver that no longer matches
a finding fails the scan too, so that the waivers file says what is true.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

HERE = Path(__file__).resolve().parent
WAIVERS = HERE / "checkov-waivers.yaml"
SAFE = YAML(typ="safe")
WORKFLOW_KINDS = {"WorkflowTemplate", "CronWorkflow"}
ARGO_WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
POD_FIELDS = ("serviceAccountName", "securityContext", "volumes", "automountServiceAccountToken")


def as_deployment(rollout: dict[str, Any]) -> dict[str, Any]:
    """A Rollout's pod template, as a Deployment's (the fields checkov reads)."""
    spec = rollout["spec"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": rollout["metadata"],
        "spec": {"selector": spec.get("selector", {}), "template": spec["template"]},
    }


def as_pods(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Each container step of a workflow, as the Pod Argo runs it in."""
    spec = workflow["spec"]
    spec = spec.get("workflowSpec", spec)  # a CronWorkflow holds a workflow's spec
    shared = {field: spec[field] for field in POD_FIELDS if field in spec}
    pods = []
    for template in spec.get("templates", []):
        container = template.get("container") or template.get("script")
        if container is None:
            continue
        workflow_name = workflow["metadata"]["name"]
        name = f"{workflow_name}-{template['name']}"
        # Argo labels every pod of a workflow with the workflow's name. The labels matter:
        # checkov ties a Pod without labels to every NetworkPolicy in sight, as if an
        # empty selector chose it, and would pass CKV2_K8S_6 for pods no policy selects.
        labels = {
            **spec.get("podMetadata", {}).get("labels", {}),
            ARGO_WORKFLOW_LABEL: workflow_name,
        }
        metadata = {
            "name": name,
            "namespace": workflow["metadata"].get("namespace"),
            "labels": labels,
        }
        body = {**shared, "containers": [{"name": "main", **container}]}
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body})
    return pods


def scratch_copy(out: Path, scratch: Path) -> None:
    """`out`'s YAML files in `scratch`, workloads in the kinds checkov reads."""
    for path in sorted(out.rglob("*.yaml")):
        target = scratch / path.relative_to(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        document = SAFE.load(path.read_text(encoding="utf-8"))
        kind = document.get("kind") if isinstance(document, dict) else None
        if kind == "Rollout":
            documents = [as_deployment(document)]
        elif kind in WORKFLOW_KINDS:
            documents = as_pods(document)
        else:
            shutil.copyfile(path, target)
            continue
        with target.open("w", encoding="utf-8") as stream:
            SAFE.dump_all(documents, stream)


def findings(checkov: str, scratch: Path) -> list[dict[str, str]]:
    command = [checkov, "-d", str(scratch), "--framework", "kubernetes", "--quiet"]
    command += ["--output", "json", "--skip-download"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise SystemExit(f"checkov failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [f for r in reports for f in r.get("results", {}).get("failed_checks", [])]
    return [
        {"check": f["check_id"], "name": f["check_name"], "resource": f["resource"]} for f in failed
    ]


def waived(finding: dict[str, str], waivers: list[dict[str, str]]) -> dict[str, str] | None:
    for waiver in waivers:
        resource = waiver.get("resource", "*")
        if waiver["check"] == finding["check"] and fnmatch.fnmatch(finding["resource"], resource):
            return waiver
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", default=shutil.which("checkov") or "checkov")
    parser.add_argument("--out", type=Path, default=Path("generated"))
    args = parser.parse_args(argv)
    waivers: list[dict[str, str]] = SAFE.load(WAIVERS.read_text(encoding="utf-8")) or []
    missing_reason = [w["check"] for w in waivers if not str(w.get("reason", "")).strip()]
    if missing_reason:
        print(f"waivers without a reason in {WAIVERS.name}: {', '.join(missing_reason)}")
        return 1
    with tempfile.TemporaryDirectory(prefix="kiln-scan-") as folder:
        scratch = Path(folder)
        scratch_copy(args.out, scratch)
        found = findings(args.checkov, scratch)
    open_findings = [f for f in found if waived(f, waivers) is None]
    used = {id(waived(f, waivers)) for f in found}
    stale = [w for w in waivers if id(w) not in used]
    for finding in sorted(open_findings, key=lambda f: (f["check"], f["resource"])):
        print(f"{finding['check']} {finding['resource']}: {finding['name']}")
    for waiver in stale:
        print(
            f"waiver {waiver['check']} ({waiver.get('resource', '*')}) matches no finding: drop it"
        )
    print(
        f"checkov: {len(found)} finding(s), {len(found) - len(open_findings)} waived, "
        f"{len(open_findings)} open, {len(stale)} stale waiver(s)"
    )
    return 1 if open_findings or stale else 0


if __name__ == "__main__":
    sys.exit(main())
