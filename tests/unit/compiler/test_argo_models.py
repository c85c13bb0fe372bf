"""Rendered Argo Workflows objects type-check with the `argo-workflows` package's models.

The strict JSON Schemas (tests/unit/compiler/test_manifests.py) reject unknown fields; the
OpenAPI client's models are the other view of the same API: required fields and
types as the Argo Server's Python client sees them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import argo_workflows
import pytest
from argo_workflows.exceptions import ApiTypeError
from argo_workflows.model.io_argoproj_workflow_v1alpha1_cron_workflow import (
    IoArgoprojWorkflowV1alpha1CronWorkflow,
)
from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_template import (
    IoArgoprojWorkflowV1alpha1WorkflowTemplate,
)
from argo_workflows.model_utils import validate_and_convert_types

from compiler.api import build
from tests.tools import REPO_ROOT

ROOT = REPO_ROOT
MODELS = {
    "WorkflowTemplate": IoArgoprojWorkflowV1alpha1WorkflowTemplate,
    "CronWorkflow": IoArgoprojWorkflowV1alpha1CronWorkflow,
}
TREES = [ROOT / "specs", *sorted((ROOT / "tests" / "golden").glob("*/specs"))]


def _type_check(document: dict[str, Any], where: str) -> Any:
    return validate_and_convert_types(
        copy.deepcopy(document),
        (MODELS[document["kind"]],),
        [where],
        True,
        True,
        argo_workflows.Configuration(),
    )


def _workflows(specs: Path) -> list[tuple[str, dict[str, Any]]]:
    result = build(specs)
    assert result.ok, [d.text() for d in result.diagnostics]
    return [
        (a.path, a.document)
        for a in result.artifacts
        if a.document is not None and a.document["kind"] in MODELS
    ]


@pytest.mark.parametrize("specs", TREES, ids=[p.parent.name for p in TREES])
def test_workflow_objects_type_check(specs: Path) -> None:
    workflows = _workflows(specs)
    if not workflows:
        pytest.skip(f"{specs.parent.name} declares no training or monitoring")
    for path, document in workflows:
        checked = _type_check(document, path)
        assert isinstance(checked, MODELS[document["kind"]])
        assert checked.metadata.name == document["metadata"]["name"]


def test_the_models_reject_a_wrong_type() -> None:
    path, document = next(
        (p, d) for p, d in _workflows(ROOT / "specs") if d["kind"] == "WorkflowTemplate"
    )
    document["spec"]["templates"][-1]["container"]["command"] = "python -m runtime.steps.features"
    with pytest.raises(ApiTypeError, match="command"):
        _type_check(document, path)
