"""The longest gap of a cron schedule, against croniter walking the calendar run by run."""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from croniter import croniter

from compiler.api import build
from compiler.spec.cron import longest_gap_seconds
from tests.tools import REPO_ROOT

EXAMPLE = REPO_ROOT / "specs"

HOUR = 3600
DAY = 24 * HOUR


def _walked_gap(expression: str, runs: int) -> int:
    """The oracle: the longest gap among the next `runs` runs from 2026-01-01."""
    times = croniter(expression, datetime(2026, 1, 1, tzinfo=UTC))
    starts = [times.get_next(float) for _ in range(runs)]
    return int(max(b - a for a, b in itertools.pairwise(starts)))


@pytest.mark.parametrize(
    ("expression", "runs"),
    [
        ("*/15 * * * *", 200),
        ("0 * * * *", 200),
        ("0 * * * 1-5", 400),  # the weekend: Friday 23:00 to Monday 00:00
        ("30 9,17 * * mon-fri", 60),
        ("0 3 * * 1", 20),
        ("0 6 * * sun", 20),
        ("0 0 * * 7", 20),  # 7 is Sunday too
        ("15 2 1 * *", 40),
        ("0 0 1 jan,jul *", 20),
        ("0 0 13 * 5", 200),  # a day and a weekday: either one runs it
        ("0 0 31 * *", 30),  # months without a 31st are skipped
        ("0 0 L * *", 30),
        ("0 0 * * L5", 30),  # the last Friday of the month
        ("0 0 15W * *", 40),  # the weekday nearest the 15th
        ("0 0 29 2 *", 3),  # leap days, four years apart
        ("0 12 ? * *", 20),
    ],
)
def test_longest_gap_matches_walking_the_runs(expression: str, runs: int) -> None:
    assert longest_gap_seconds(expression) == _walked_gap(expression, runs)


def test_weekday_schedule_sees_the_weekend() -> None:
    # The next 32 runs of an hourly weekday schedule never reach a weekend; the
    # gap is the weekend's 49 hours, not the hour between runs.
    assert longest_gap_seconds("0 * * * 1-5") == 49 * HOUR
    assert _walked_gap("0 * * * 1-5", 32) == HOUR


def test_schedule_on_a_date_that_does_not_exist_never_runs() -> None:
    assert longest_gap_seconds("0 6 30 2 *") is None
    assert longest_gap_seconds("0 0 31 4,6,9,11 *") is None


def test_daily_schedule() -> None:
    assert longest_gap_seconds("30 2 * * *") == DAY


def test_staleness_alert_waits_out_the_weekend(tmp_path: Path) -> None:
    """A monitor that runs hourly on weekdays is stale after twice the weekend."""
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE, specs)
    model = specs / "models" / "car-loan-default.yaml"
    text = model.read_text(encoding="utf-8")
    assert 'schedule: {cron: "0 * * * *"}' in text
    model.write_text(text.replace('{cron: "0 * * * *"}', '{cron: "0 * * * 1-5"}'), "utf-8")
    result = build(specs)
    assert result.ok, [d.text() for d in result.diagnostics]
    stale = [
        rule["expr"]
        for artifact in result.artifacts
        if artifact.document is not None
        and artifact.document["kind"] == "PrometheusRule"
        and artifact.document["metadata"]["name"] == "car-loan-default"
        for group in artifact.document["spec"]["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "KilnMonitorStale"
    ]
    assert len(stale) == 2  # staging and production
    assert all(expr.endswith(f"> {2 * 49 * HOUR}") for expr in stale), stale
