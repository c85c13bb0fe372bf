"""The model of Argo Rollouts' analysis in tests/argo_analysis.py, checked against the
cases its Go sources decide (utils/evaluate/evaluate.go, analysis/analysis.go)."""

from __future__ import annotations

import math

import pytest

from tests.argo_analysis import (
    ConditionError,
    MetricResult,
    Phase,
    UnsupportedCondition,
    assess,
    condition,
    decide,
    initial_delay_s,
    measure,
    vector_result,
    worst,
)

NAN = math.nan
S, F, N, E = Phase.SUCCESSFUL, Phase.FAILED, Phase.INCONCLUSIVE, Phase.ERROR
AT_MOST = ("len(result) == 1 && result[0] <= 0.01", "len(result) == 1 && result[0] > 0.01")


@pytest.mark.parametrize(
    ("text", "result", "expected"),
    [
        ("result[0] <= 5", [5.0], True),
        ("result[0] <= 5", [5.5], False),
        ("result[0] > 5", [NAN], False),  # Go: every comparison with NaN is false
        ("result[0] <= 5", [NAN], False),
        ("isNaN(result[0])", [NAN], True),
        ("!isNaN(result[0]) && result[0] < 1", [0.5], True),
        ("len(result) == 0", [], True),
        ("len(result) == 1 && result[0] >= 100", [], False),  # && stops before result[0]
        ("len(result) == 0 || result[0] > 1", [], True),
        ("(result[0] >= 1e2)", [100.0], True),
        ("false", [1.0], False),
        ("true", [], True),
    ],
)
def test_conditions(text: str, result: list[float], expected: bool) -> None:
    assert condition(text)(result) is expected


def test_indexing_an_empty_result_is_an_error() -> None:
    with pytest.raises(ConditionError, match="out of range"):
        condition("result[0] <= 5")([])


def test_a_condition_that_is_not_a_boolean_is_an_error() -> None:
    with pytest.raises(ConditionError, match="expected bool"):
        condition("result[0]")([1.0])


@pytest.mark.parametrize("text", ["asInt(result[0]) > 1", "result[0] + 1 > 2", "result > 1 ?"])
def test_expr_lang_beyond_the_subset_is_refused(text: str) -> None:
    with pytest.raises(UnsupportedCondition):
        condition(text)


@pytest.mark.parametrize(
    ("result", "expected"),
    [([0.0], S), ([0.5], F), ([NAN], N), ([], N), ([0.0, 0.0], N)],
)
def test_a_measurement_with_both_conditions(result: list[float], expected: Phase) -> None:
    assert measure(result, *AT_MOST) is expected


def test_a_success_condition_alone_fails_whatever_is_not_a_success() -> None:
    # The trap of the old template: NaN under `result[0] <= x` alone is Failed,
    # and an empty result an Error.
    assert measure([NAN], "result[0] <= 5", "") is F
    assert measure([], "result[0] <= 5", "") is E
    assert measure([1.0], "result[0] <= 5", "") is S


def test_a_failure_condition_alone_passes_whatever_is_not_a_failure() -> None:
    assert measure([NAN], "", "result[0] > 5") is S
    assert measure([9.0], "", "result[0] > 5") is F


def test_no_condition_is_a_success() -> None:
    assert measure([], "", "") is S


def test_a_prometheus_vector_becomes_a_list_of_floats() -> None:
    samples = [{"metric": {}, "value": [1.0, "0.5"]}, {"metric": {}, "value": [1.0, "NaN"]}]
    values = vector_result(samples)
    assert values[0] == 0.5 and math.isnan(values[1])
    assert vector_result([]) == []


METRIC = {"count": 5, "failureLimit": 1, "inconclusiveLimit": 2, "consecutiveErrorLimit": 2}


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        ([S, S, S, S, S], S),
        ([S, F, S, S, S], S),  # one failure is within failureLimit 1
        ([S, F, F], F),
        ([N, N, N], N),  # more than inconclusiveLimit 2: the rollout pauses
        ([N, N, S, S, S], S),
        ([E, E, E], E),  # more than 2 errors in a row: the rollout aborts
        ([E, E, S, E, E, S, S, S, S], S),  # errors apart do not add up, nor count
        ([S, S, S, S], Phase.RUNNING),
    ],
)
def test_measurements_end_in_a_decision(phases: list[Phase], expected: Phase) -> None:
    assert decide(METRIC, phases) is expected


def test_defaults_when_the_limits_are_not_written() -> None:
    # failureLimit 0, inconclusiveLimit 0, consecutiveErrorLimit 4.
    assert decide({"count": 3}, [F]) is F
    assert decide({"count": 3}, [N]) is N
    assert decide({"count": 3}, [E, E, E, E]) is Phase.RUNNING
    assert decide({"count": 3}, [E, E, E, E, E]) is E


def test_inconclusive_wins_over_failed_and_error_over_both() -> None:
    # assessMetricFailureInconclusiveOrError checks in that order; the last one set wins.
    both = MetricResult(count=4, failed=2, inconclusive=2)
    assert assess({"count": 10, "failureLimit": 1, "inconclusiveLimit": 1}, both) is N
    erring = MetricResult(count=4, failed=2, inconclusive=2, consecutive_error=5)
    assert assess({"count": 10, "failureLimit": 1, "inconclusiveLimit": 1}, erring) is E


def test_limits_as_wide_as_count_pass_without_one_good_measurement() -> None:
    # Why KILN1418 exists.
    assert decide({"count": 3, "failureLimit": 1, "inconclusiveLimit": 2}, [F, N, N]) is S


def test_the_worst_metric_decides_the_run() -> None:
    assert worst([S, N, S]) is N
    assert worst([S, N, E]) is E
    assert worst([E, F]) is F
    assert worst([S, Phase.RUNNING, F]) is Phase.RUNNING
    assert worst([S, Phase.PENDING]) is Phase.RUNNING


def test_a_metric_not_measured_yet_is_pending() -> None:
    assert decide(METRIC, []) is Phase.PENDING


def test_initial_delay_in_whole_seconds() -> None:
    assert initial_delay_s({"initialDelay": "75s"}) == 75.0
    assert initial_delay_s({}) == 0.0
    with pytest.raises(UnsupportedCondition):
        initial_delay_s({"initialDelay": "1m"})
