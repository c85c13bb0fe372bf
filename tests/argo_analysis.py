"""How Argo Rollouts judges a Prometheus metric, for the conditions Kiln renders.

A small, faithful model of three pieces of argoproj/argo-rollouts, so that tests can
evaluate a compiled AnalysisTemplate against a real Prometheus:

- `utils/evaluate/evaluate.go`, `EvaluateResult`: how successCondition and
  failureCondition make one measurement Successful, Failed or Inconclusive, and
  that a condition which cannot be evaluated makes it an Error;
- `metricproviders/prometheus/prometheus.go`, `processResponse`: an instant vector
  becomes `result`, a list of floats (empty when the query returned no series);
- `analysis/analysis.go`, `assessMetricStatus` and `assessMetricFailureInconclusiveOrError`:
  how the counts of measurements end a metric (failureLimit, inconclusiveLimit,
  consecutiveErrorLimit, count), and `utils/analysis/helpers.go`, the order in
  which the worst metric decides the run.

Conditions are expr-lang expressions; this reads only the subset Kiln emits
(`len(result)`, `result[i]`, numbers, `true`/`false`, `isNaN(...)`, comparisons,
`!`, `&&`, `||`, parentheses) and refuses anything else, so a new kind of
condition fails the tests instead of being misread. `&&` and `||` stop early as
in expr-lang; comparisons with NaN are false as in Go.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# consecutiveErrorLimit when a metric sets none (utils/defaults/defaults.go).
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4


class Phase(StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"
    RUNNING = "Running"
    PENDING = "Pending"  # not measured yet: its initialDelay has not passed


# Best to worst, as analysisStatusOrder in utils/analysis/helpers.go.
_ORDER = [
    Phase.SUCCESSFUL,
    Phase.RUNNING,
    Phase.PENDING,
    Phase.INCONCLUSIVE,
    Phase.ERROR,
    Phase.FAILED,
]


class ConditionError(Exception):
    """The condition could not be evaluated (expr-lang raised): the measurement is an Error."""


class UnsupportedCondition(ValueError):
    """The condition uses expr-lang beyond what this model reads."""


_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\]]))"
)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}


def _tokens(text: str) -> list[str]:
    found, at = [], 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            if text[at:].strip() == "":
                break
            raise UnsupportedCondition(f"cannot read {text[at:]!r} in {text!r}")
        found.append(match.group(match.lastgroup or ""))
        at = match.end()
    return found


Node = Callable[[Sequence[float]], Any]


class _Parser:
    """Recursive descent over the tokens; each rule returns a function of `result`."""

    def __init__(self, text: str) -> None:
        self.text, self.tokens, self.at = text, _tokens(text), 0

    def parse(self) -> Node:
        node = self._or()
        if self.at != len(self.tokens):
            raise UnsupportedCondition(f"unexpected {self.tokens[self.at]!r} in {self.text!r}")
        return node

    def _peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self._peek()
        if token is None or (expected is not None and token != expected):
            raise UnsupportedCondition(f"expected {expected or 'more'} in {self.text!r}")
        self.at += 1
        return token

    def _or(self) -> Node:
        left = self._and()
        while self._peek() == "||":
            self._take()
            left = (lambda a, b: lambda r: bool(a(r)) or bool(b(r)))(left, self._and())
        return left

    def _and(self) -> Node:
        left = self._compare()
        while self._peek() == "&&":
            self._take()
            left = (lambda a, b: lambda r: bool(a(r)) and bool(b(r)))(left, self._compare())
        return left

    def _compare(self) -> Node:
        left = self._unary()
        op = self._peek()
        if op in _COMPARE:
            self._take()
            right, compare = self._unary(), _COMPARE[op]
            return lambda r: compare(left(r), right(r))
        return left

    def _unary(self) -> Node:
        if self._peek() == "!":
            self._take()
            inner = self._unary()
            return lambda r: not inner(r)
        return self._operand()

    def _operand(self) -> Node:
        token = self._take()
        if token == "(":
            inner = self._or()
            self._take(")")
            return inner
        if token in ("true", "false"):
            value = token == "true"
            return lambda r: value
        if token[0].isdigit():
            number = float(token)
            return lambda r: number
        if token == "result":
            if self._peek() != "[":
                return lambda r: r
            self._take("[")
            index = int(self._take())
            self._take("]")
            return lambda r: _item(r, index)
        if token in ("len", "isNaN"):
            self._take("(")
            inner = self._or()
            self._take(")")
            if token == "len":
                return lambda r: len(inner(r))
            return lambda r: math.isnan(inner(r))
        raise UnsupportedCondition(f"{token!r} in {self.text!r} is outside Kiln's subset")


def _item(result: Sequence[float], index: int) -> float:
    if index >= len(result):
        # expr-lang: "index out of range"; EvaluateResult returns AnalysisPhaseError.
        raise ConditionError(f"index {index} out of range of {list(result)}")
    return result[index]


def condition(text: str) -> Callable[[Sequence[float]], bool]:
    """A condition as a function of `result`; raises ConditionError where expr-lang would."""
    node = _Parser(text).parse()

    def evaluate(result: Sequence[float]) -> bool:
        value = node(result)
        if not isinstance(value, bool):
            raise ConditionError(f"expected bool, but got {type(value).__name__}")
        return value

    return evaluate


def measure(result: Sequence[float], success: str, failure: str) -> Phase:
    """One measurement's phase, as EvaluateResult decides it."""
    try:
        succeeded = condition(success)(result) if success else False
        failed = condition(failure)(result) if failure else False
    except ConditionError:
        return Phase.ERROR
    if not success and not failure:
        return Phase.SUCCESSFUL
    if success and not failure:
        failed = not succeeded
    elif failure and not success:
        succeeded = not failed
    if failed:
        return Phase.FAILED
    if not succeeded:
        return Phase.INCONCLUSIVE
    return Phase.SUCCESSFUL


def vector_result(samples: Sequence[Mapping[str, Any]]) -> list[float]:
    """`result` from the `data.result` of a Prometheus instant-vector answer."""
    return [float(sample["value"][1]) for sample in samples]


@dataclass
class MetricResult:
    """The counters Argo Rollouts keeps per metric (v1alpha1.MetricResult)."""

    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0

    def record(self, phase: Phase) -> None:
        if phase is Phase.ERROR:
            self.error += 1
            self.consecutive_error += 1
            return
        self.count += 1
        self.consecutive_error = 0
        if phase is Phase.SUCCESSFUL:
            self.successful += 1
        elif phase is Phase.FAILED:
            self.failed += 1
        else:
            self.inconclusive += 1


def _limit(metric: Mapping[str, Any], key: str, default: int) -> int:
    value = metric.get(key)
    return default if value is None else int(value)


def assess(metric: Mapping[str, Any], result: MetricResult) -> Phase:
    """The metric's phase after the measurements so far (assessMetricStatus, without
    consecutiveSuccessLimit, which Kiln does not render)."""
    phase = Phase.RUNNING
    failure_limit = _limit(metric, "failureLimit", 0)
    if failure_limit >= 0 and result.failed > failure_limit:  # a negative limit: no limit
        phase = Phase.FAILED
    # Later checks win, as in assessMetricFailureInconclusiveOrError.
    if result.inconclusive > _limit(metric, "inconclusiveLimit", 0):
        phase = Phase.INCONCLUSIVE
    errors = _limit(metric, "consecutiveErrorLimit", DEFAULT_CONSECUTIVE_ERROR_LIMIT)
    if result.consecutive_error > errors:
        phase = Phase.ERROR
    if phase is not Phase.RUNNING:
        return phase
    count = metric.get("count")
    if count is not None and result.count >= int(count):
        return Phase.SUCCESSFUL
    return Phase.RUNNING


def initial_delay_s(metric: Mapping[str, Any]) -> float:
    """The metric's initialDelay in seconds (Kiln writes whole seconds, `75s`)."""
    text = str(metric.get("initialDelay") or "0s")
    if not re.fullmatch(r"\d+s", text):
        raise UnsupportedCondition(f"initialDelay {text!r} is not whole seconds")
    return float(text[:-1])


def decide(metric: Mapping[str, Any], phases: Sequence[Phase]) -> Phase:
    """Feed measurements one by one, as the controller does, until the metric ends;
    Pending before the first one."""
    if not phases:
        return Phase.PENDING
    result = MetricResult()
    for phase in phases:
        result.record(phase)
        decision = assess(metric, result)
        if decision is not Phase.RUNNING:
            return decision
    return Phase.RUNNING


def worst(phases: Sequence[Phase]) -> Phase:
    """The AnalysisRun's phase from its metrics' phases: Running while any metric runs,
    else the worst one (assessRunStatus)."""
    if Phase.RUNNING in phases or Phase.PENDING in phases:
        return Phase.RUNNING
    return max(phases, key=_ORDER.index)
