"""Every job container Kiln renders runs with a read-only root filesystem and writes
only to /tmp, an emptyDir of its own pod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.tools import REPO_ROOT

WORKFLOW_KINDS = ("workflowtemplate-", "cronworkflow-")


def workflows() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted((REPO_ROOT / "generated").rglob("*.yaml")):
        if path.name.startswith(WORKFLOW_KINDS):
            found.append((path, YAML(typ="safe").load(path.read_text(encoding="utf-8"))))
    return found


def test_every_job_container_has_a_read_only_root_and_a_scratch_folder() -> None:
    checked = 0
    for path, document in workflows():
        spec = document["spec"].get("workflowSpec", document["spec"])
        if "templates" not in spec:
            continue  # a CronWorkflow that runs a WorkflowTemplate by reference
        assert {"name": "scratch", "emptyDir": {}} in spec["volumes"], path
        for template in spec["templates"]:
            container = template.get("container")
            if container is None:
                continue
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, path
            assert {"name": "scratch", "mountPath": "/tmp"} in container["volumeMounts"], path
            checked += 1
    assert checked >= 10  # the training steps and the monitor, of every model
