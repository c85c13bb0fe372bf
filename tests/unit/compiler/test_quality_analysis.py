"""The quality metrics of the rendered AnalysisTemplates (compiler/targets/quality.py).

Read from the compiled example and golden cases, judged with the model of Argo Rollouts'
semantics in tests/argo_analysis.py, and the comparison Job's command parsed by the step's
own parser.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from compiler.api import build
from compiler.plan.facts import model_facts
from compiler.targets.quality import READERS
from runtime.contract import quality as contract
from runtime.monitor import compare
from tests.argo_analysis import Phase, decide, measure, worst
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


def _metrics(template: Any) -> dict[str, Any]:
    return {m["name"]: m for m in template["spec"]["metrics"]}


def _command(template: Any) -> list[str]:
    job = _metrics(template)["quality-measure"]["provider"]["job"]["spec"]
    command: list[str] = job["template"]["spec"]["containers"][0]["command"]
    return command


def _quality(templates: dict[str, Any]) -> dict[str, Any]:
    return {p: t for p, t in templates.items() if "quality-measure" in _metrics(t)}


def test_every_strategy_with_quality_thresholds_is_covered(templates: dict[str, Any]) -> None:
    names = {path.split("/")[-2] for path in _quality(templates)}
    expected = {"blue-green-cpu", "canary-istio-gpu", "shadow-istio-cpu", "ab-istio-gpu"}
    assert expected | {"car-loan-default", "risk-score", "price-estimate"} <= names


def test_the_job_command_is_what_the_step_parses(templates: dict[str, Any]) -> None:
    for path, template in _quality(templates).items():
        command = _command(template)
        assert command[:3] == ["python", "-m", contract.COMPARE_PREDICTIONS.module], path
        args = compare.contract.COMPARE_PREDICTIONS.parser().parse_args(command[3:])
        assert args.captured.endswith(f"/{args.model}/captured/"), path
        shadowed = ("shadow-istio-cpu", "price-estimate", "staging/risk-score")
        assert args.shadow == any(name in path for name in shadowed), path
        # Every reader's version label is the version the Job compares.
        for name in READERS:
            if name in _metrics(template):
                query = _metrics(template)[name]["provider"]["prometheus"]["query"]
                assert f'version="{args.version}"' in query, (path, name)


def test_a_canary_window_is_the_analysis_and_a_shadow_window_adds_the_mirroring(
    templates: dict[str, Any],
) -> None:
    canary = templates[
        "strategies/staging/canary-istio-gpu/analysistemplate-canary-istio-gpu-analysis.yaml"
    ]
    shadow = templates[
        "strategies/staging/shadow-istio-cpu/analysistemplate-shadow-istio-cpu-analysis.yaml"
    ]
    window = _command(canary)[_command(canary).index("--window") + 1]
    assert window == str(5 * 30)  # count 5 x interval 30s
    window = _command(shadow)[_command(shadow).index("--window") + 1]
    assert window == str(15 * 60 + 5 * 30)  # shadow.duration 15m, then the analysis


def test_the_readers_read_what_the_step_pushes(templates: dict[str, Any]) -> None:
    pushed = compare.exposition(
        compare.Measurement(
            2, 1, 9, 9, 9, True, {s: 0.5 for s in READERS.values() if s != contract.ROWS}
        ),
        "m",
        "e",
        compare.datetime.now(compare.UTC),
    )
    names = set(re.findall(r"^(kiln_[a-z_]+)\{", pushed, re.MULTILINE))
    for path, template in _quality(templates).items():
        for name, metric in _metrics(template).items():
            if name not in READERS:
                continue
            query = metric["provider"]["prometheus"]["query"]
            assert set(re.findall(r"\b(kiln_[a-z_]+)\{", query)) <= names, (path, query)
            assert "{{" not in query and "vector(" not in query, path


def test_too_few_rows_is_inconclusive_and_enough_a_success(templates: dict[str, Any]) -> None:
    for path, template in _quality(templates).items():
        rows = _metrics(template)["quality-rows"]
        floor = int(_command(template)[_command(template).index("--min-rows") + 1])
        conditions = rows["successCondition"], rows["failureCondition"]
        assert measure([floor - 1], *conditions) is Phase.INCONCLUSIVE, path
        assert measure([floor], *conditions) is Phase.SUCCESSFUL, path
        assert measure([], *conditions) is Phase.INCONCLUSIVE, path


def test_thresholds_come_from_the_spec(templates: dict[str, Any]) -> None:
    shadow = _metrics(
        templates["every-field/staging/risk-score/analysistemplate-risk-score-analysis.yaml"]
    )
    agreement = shadow["prediction-agreement"]
    conditions = agreement["successCondition"], agreement["failureCondition"]
    assert measure([0.97], *conditions) is Phase.SUCCESSFUL
    assert measure([0.9158], *conditions) is Phase.FAILED
    difference = shadow["prediction-mean-abs-difference"]
    conditions = difference["successCondition"], difference["failureCondition"]
    assert measure([0.05], *conditions) is Phase.SUCCESSFUL
    assert measure([0.06], *conditions) is Phase.FAILED
    command = _command(
        templates["every-field/production/risk-score/analysistemplate-risk-score-analysis.yaml"]
    )
    assert command[command.index("--distance") + 1] == "psi"
    assert command[command.index("--min-rows") + 1] == "2000"
    example = _metrics(
        templates[
            "example/staging/car-loan-default/analysistemplate-car-loan-default-analysis.yaml"
        ]
    )
    shift = example["prediction-shift"]
    conditions = shift["successCondition"], shift["failureCondition"]
    # The figures of tests/unit/runtime/monitor/test_compare.py: the same model, a broken one.
    assert measure([0.0332], *conditions) is Phase.SUCCESSFUL
    assert measure([0.2158], *conditions) is Phase.FAILED


def test_a_silent_step_pauses_the_rollout_and_a_bad_shift_aborts_it(
    templates: dict[str, Any],
) -> None:
    template = templates[
        "example/staging/car-loan-default/analysistemplate-car-loan-default-analysis.yaml"
    ]
    metrics = _metrics(template)
    count = metrics["quality-rows"]["count"]
    # The Job completes on every measurement, too few rows included: Successful.
    measured = decide(metrics["quality-measure"], [Phase.SUCCESSFUL] * count)
    idle = [
        decide(metrics[name], [Phase.INCONCLUSIVE] * count)
        for name in ("quality-rows", "prediction-shift")
    ]
    assert worst([measured, *idle]) is Phase.INCONCLUSIVE
    bad = decide(metrics["prediction-shift"], [Phase.FAILED] * count)
    assert worst([measured, Phase.SUCCESSFUL, bad]) is Phase.FAILED


def test_readers_wait_one_interval_for_the_first_push(templates: dict[str, Any]) -> None:
    for path, template in _quality(templates).items():
        for name, metric in _metrics(template).items():
            if name in READERS:
                assert metric["initialDelay"] == metric["interval"], (path, name)


def test_the_plan_states_the_quality_gate() -> None:
    resolution = build(TREES["every-field"]).resolution
    shadowed = model_facts(resolution.find("risk-score", "staging"))
    assert shadowed["analysis quality gate"] == (
        "psi shift at most 0.15, agreement at least 97%, mean abs difference at most 0.05; "
        "at least 2000 rows per version"
    )
    assert model_facts(resolution.find("offer-ranker", "staging"))["analysis quality gate"] == (
        "none"
    )
