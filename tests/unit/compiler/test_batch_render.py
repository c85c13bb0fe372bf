"""Batch jobs as rendered: the command the scorer parses, the schedule, the columns.

The strict schema checks of every golden manifest are in test_manifests.py; here the
contract between the rendered command and `runtime.serving.batch` is checked by parsing
each rendered command with the scorer's own parser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from compiler.api import build
from runtime.contract.batch import ARGO_RUN, BATCH, BatchColumns
from runtime.contract.signing import Trust
from runtime.contract.steps import CommandError

ROOT = Path(__file__).resolve().parents[3]
EVERY_FIELD = ROOT / "tests" / "golden" / "every-field" / "specs"


@pytest.fixture(scope="module")
def documents() -> dict[str, Any]:
    result = build(EVERY_FIELD)
    assert result.ok, result.diagnostics
    return {a.path: a.document for a in result.artifacts if a.document is not None}


def _scorer_args(document: dict[str, Any]) -> Any:
    command = document["spec"]["templates"][0]["container"]["command"]
    assert command[:3] == ["python", "-m", BATCH.module]
    return BATCH.parser().parse_args(command[3:])


def test_a_scheduled_job_gets_a_template_and_a_cron_of_it(documents: dict[str, Any]) -> None:
    folder = "production/churn-tier"
    cron = documents[f"{folder}/cronworkflow-churn-tier-batch-weekly.yaml"]
    assert cron["spec"]["schedules"] == ["0 4 * * 0"]
    assert cron["spec"]["timezone"] == "Europe/Paris"
    assert cron["spec"]["workflowSpec"] == {
        "workflowTemplateRef": {"name": "churn-tier-batch-weekly"}
    }
    assert f"{folder}/workflowtemplate-churn-tier-batch-weekly.yaml" in documents
    # On demand: a template, no schedule.
    assert f"{folder}/workflowtemplate-churn-tier-batch-rescore.yaml" in documents
    assert f"{folder}/cronworkflow-churn-tier-batch-rescore.yaml" not in documents
    # Locally `kiln predict` runs the step: no Argo objects.
    assert not [p for p in documents if p.startswith("dev/") and "-batch" in p]


def test_the_rendered_command_is_what_the_scorer_parses(documents: dict[str, Any]) -> None:
    template = documents["production/churn-tier/workflowtemplate-churn-tier-batch-weekly.yaml"]
    args = _scorer_args(template)
    # Placed under production's own stores, with the job's version and its digest.
    assert args.model == "gs://every-field-prod-models/churn-tier/1/model.onnx"
    assert args.sha256 == "f6fea44e1372fd0b4055cd8e1104d06ca2c48e7ceab1b43df48025f3caca1e1d"
    assert args.input == "gs://every-field-prod-data/churn/customers/"
    assert args.output == "gs://every-field-prod-data/churn/predictions/weekly/"
    assert (args.format, args.chunk_rows, args.run) == ("csv", 50_000, ARGO_RUN)
    columns = BatchColumns.from_json(args.columns)
    # The monitor's columns: a score per class, in the order of `classes`.
    assert columns.score == (("low", "p_low"), ("mid", "p_mid"), ("high", "p_high"))
    assert (columns.prediction, columns.timestamp_out) == ("y_pred", "seen_at")
    assert json.loads(args.signature)["outputs"][1]["shape"] == [-1, 3]
    limits = template["spec"]["templates"][0]["container"]["resources"]["limits"]
    assert limits == {"cpu": "4", "memory": "8Gi"}


def test_an_environment_that_checks_signatures_passes_bundle_and_trust(
    documents: dict[str, Any],
) -> None:
    path = "staging/price-estimate/workflowtemplate-price-estimate-batch-appraise.yaml"
    template = documents[path]
    args = _scorer_args(template)
    trust = Trust.from_json(args.trust)
    assert trust.declared or trust.require_signatures
    # Without a monitoring score column, a regression writes only the prediction.
    assert BatchColumns.from_json(args.columns).score is None


def test_the_columns_document_round_trips() -> None:
    columns = BatchColumns(("a", "b"), "ts", "at", None, "p", (("x", "px"), ("y", "py")))
    assert BatchColumns.from_json(columns.to_json()) == columns
    assert columns.written == ("at", "a", "b", "p", "px", "py")


def test_a_command_without_the_columns_is_refused() -> None:
    with pytest.raises(CommandError, match="--columns"):
        BATCH.command({"--model": "m", "--signature": "{}", "--task": "regression"})
