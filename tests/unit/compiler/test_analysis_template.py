"""The rendered AnalysisTemplates tell "no data" from "good" and "bad".

Read from the compiled example and golden cases (every strategy), and judged with
the model of Argo Rollouts' semantics in tests/argo_analysis.py.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from compiler.api import build
from compiler.targets.quality import READERS as QUALITY_READERS
from tests.argo_analysis import Phase, decide, measure
from tests.tools import REPO_ROOT

TREES = {
    "example": REPO_ROOT / "specs",
    "strategies": REPO_ROOT / "tests" / "golden" / "strategies" / "specs",
    "every-field": REPO_ROOT / "tests" / "golden" / "every-field" / "specs",
}


def _templates(specs: Path) -> dict[str, Any]:
    result = build(specs)
    assert result.ok, [d.text() for d in result.diagnostics]
    return {
        a.path: a.document
        for a in result.artifacts
        if a.document is not None and a.document["kind"] == "AnalysisTemplate"
    }


@pytest.fixture(scope="module")
def templates() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for case, tree in TREES.items():
        found.update({f"{case}/{p}": d for p, d in _templates(tree).items()})
    return found


def _all_prometheus(template: Any) -> list[Any]:
    return [m for m in template["spec"]["metrics"] if "prometheus" in m["provider"]]


def _prometheus(template: Any) -> list[Any]:
    """The operational metrics, read from Triton's counters; the quality metrics, read from
    the comparison step's pushes, are tests/unit/compiler/test_quality_analysis.py's."""
    return [m for m in _all_prometheus(template) if m["name"] not in QUALITY_READERS]


def test_every_strategy_with_an_analysis_is_covered(templates: dict[str, Any]) -> None:
    names = {path.split("/")[-2] for path in templates}
    assert {"blue-green-cpu", "canary-istio-gpu", "shadow-istio-cpu", "ab-istio-gpu"} <= names


def test_no_data_is_inconclusive_never_passed_or_failed(templates: dict[str, Any]) -> None:
    for path, template in templates.items():
        for metric in _all_prometheus(template):
            conditions = metric["successCondition"], metric["failureCondition"]
            for nothing in ([], [math.nan]):
                assert measure(nothing, *conditions) is Phase.INCONCLUSIVE, (path, metric)


def test_no_query_turns_absence_into_a_number(templates: dict[str, Any]) -> None:
    for path, template in templates.items():
        for metric in _all_prometheus(template):
            assert "vector(" not in metric["provider"]["prometheus"]["query"], path


def test_the_requests_metric_gates_every_other_metric(templates: dict[str, Any]) -> None:
    for path, template in templates.items():
        metrics = _prometheus(template)
        if not metrics:  # a smoke test alone
            continue
        assert metrics[0]["name"] == "requests", path
        requests = metrics[0]["provider"]["prometheus"]["query"]
        floor = int(re.fullmatch(r".* >= (\d+)", metrics[0]["successCondition"]).group(1))  # type: ignore[union-attr]
        assert measure([floor - 1], metrics[0]["successCondition"], "false") is Phase.INCONCLUSIVE
        assert measure([floor], metrics[0]["successCondition"], "false") is Phase.SUCCESSFUL
        for metric in metrics[1:]:
            query = metric["provider"]["prometheus"]["query"]
            assert query.endswith(f" and on() (({requests}) >= {floor})"), (path, query)


def test_min_requests_and_the_limits_come_from_the_spec(templates: dict[str, Any]) -> None:
    # every-field's risk-score sets min_requests 500, inconclusive_limit 3, interval 2m.
    risk = templates["every-field/staging/risk-score/analysistemplate-risk-score-analysis.yaml"]
    for metric in _prometheus(risk):
        assert metric["inconclusiveLimit"] == 3 and metric["consecutiveErrorLimit"] == 2
        assert "[120s]" in metric["provider"]["prometheus"]["query"]
    assert _prometheus(risk)[0]["successCondition"].endswith(">= 500")


def test_windows_hold_four_scrapes_even_with_a_short_interval(templates: dict[str, Any]) -> None:
    # The strategies case measures every 30s; the ServiceMonitor scrapes every 15s.
    canary = templates[
        "strategies/staging/canary-istio-gpu/analysistemplate-canary-istio-gpu-analysis.yaml"
    ]
    for metric in _prometheus(canary):
        assert metric["interval"] == "30s"
        assert "[60s]" in metric["provider"]["prometheus"]["query"]


def test_idleness_pauses_and_silence_never_passes(templates: dict[str, Any]) -> None:
    for path, template in templates.items():
        for metric in _all_prometheus(template):
            idle = [Phase.INCONCLUSIVE] * metric["count"]
            assert decide(metric, idle) is Phase.INCONCLUSIVE, path


def test_the_smoke_job_checks_the_latency_ceiling(templates: dict[str, Any]) -> None:
    for path, template in templates.items():
        latency = [m for m in template["spec"]["metrics"] if m["name"] == "latency-p99-ms"]
        smoke = [m for m in template["spec"]["metrics"] if m["name"] == "smoke-test"]
        if not latency or not smoke:
            continue
        ceiling = re.search(r"<= (\S+)$", latency[0]["successCondition"]).group(1)  # type: ignore[union-attr]
        command = smoke[0]["provider"]["job"]["spec"]["template"]["spec"]["containers"][0][
            "command"
        ]
        at = command.index("--max-latency-p99-ms")
        assert command[at + 1] == ceiling, path


def test_the_latency_waits_for_the_warm_up_to_leave_the_summary(
    templates: dict[str, Any],
) -> None:
    # Triton keeps the warm-up in its 60 s summary; one 15 s scrape after that.
    for path, template in templates.items():
        for metric in _prometheus(template):
            delay = metric.get("initialDelay")
            assert delay == ("75s" if metric["name"] == "latency-p99-ms" else None), path
