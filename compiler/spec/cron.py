"""Facts about a cron schedule that the compiler needs: how long it can stay silent.

The monitor's staleness alert fires when no run has reported for twice the longest
gap between two runs. That gap is a property of the whole calendar, not of the
next few runs: `0 * * * 1-5` runs every hour, but not from Friday 23:00 to Monday
00:00. So the gap is worked out from the expanded fields (croniter's parser):
every day that matches runs at the same times of day, so the longest gap is the
longest gap within a day or between the last run of a matching day and the first
of the next one.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

DAY = 86_400
# Day patterns repeat every week when only weekdays are restricted; a restricted
# day of the month or month needs the leap-year cycle (2028 and 2032 fall inside).
WEEKLY_HORIZON_DAYS = 15
CALENDAR_START = date(2026, 1, 1)
CALENDAR_END = date(2034, 1, 1)


def _values(field: list[Any], everything: range) -> list[int] | None:
    """A field's numbers, all of `everything` for `*`; None for anything else ('l')."""
    if field == ["*"]:
        return list(everything)
    if all(type(v) is int for v in field):
        return [v for v in field if v in everything]
    return None


def _times_of_day(minutes: list[int], hours: list[int]) -> list[int]:
    return sorted(h * 3600 + m * 60 for h in hours for m in minutes)


def _day_matcher(
    days: list[Any], months: list[int], weekdays: list[Any]
) -> tuple[Any, date, date] | None:
    """A test for whether a date matches, and the span of dates to test it on."""
    day_set = _values(days, range(1, 32))
    weekday_set = _values(weekdays, range(8))
    if day_set is None or weekday_set is None:  # not a plain number: L, W
        return None
    # cron: Sunday is 0 or 7; Python: Monday is 0.
    cron_weekdays = {w % 7 for w in weekday_set}
    month_set = set(months)
    any_day, any_weekday = days == ["*"], weekdays == ["*"]
    both_restricted = not any_day and not any_weekday  # then cron takes either

    def matches(day: date) -> bool:
        if day.month not in month_set:
            return False
        by_day = day.day in day_set
        by_weekday = (day.weekday() + 1) % 7 in cron_weekdays
        return (by_day or by_weekday) if both_restricted else (by_day and by_weekday)

    if any_day and months == list(range(1, 13)):
        return matches, CALENDAR_START, CALENDAR_START + timedelta(days=WEEKLY_HORIZON_DAYS)
    return matches, CALENDAR_START, CALENDAR_END


def _matching_days(
    expression: str, days: list[Any] | None, months: list[int], weekdays: list[Any]
) -> list[int]:
    """Ordinals of the days the schedule runs on, over a span that holds every pattern;
    `days` is None when the day field has a special value."""
    matcher = None if days is None else _day_matcher(days, months, weekdays)
    if matcher is not None:
        matches, start, end = matcher
        return [
            ordinal
            for ordinal in range(start.toordinal(), end.toordinal())
            if matches(date.fromordinal(ordinal))
        ]
    # L (last day), W (nearest weekday), last weekday of the month: rare and sparse,
    # so croniter itself walks the calendar one matching day at a time.
    from croniter import CroniterBadDateError, croniter

    fields = expression.split()
    daily = croniter(" ".join(["0", "0", *fields[2:]]), datetime(2025, 12, 31, tzinfo=UTC))
    found: list[int] = []
    try:
        while True:
            day = daily.get_next(datetime).date()
            if day >= CALENDAR_END:
                return found
            found.append(day.toordinal())
    except CroniterBadDateError:  # no further matching day
        return found


@cache
def longest_gap_seconds(expression: str) -> int | None:
    """The longest time between two runs of a valid cron expression; None if it never runs."""
    from croniter import croniter

    expanded, nth_weekday = croniter.expand(expression)[:2]
    minutes, hours, days, months, weekdays = expanded
    minute_set = _values(minutes, range(60))
    hour_set = _values(hours, range(24))
    month_set = _values(months, range(1, 13))
    assert minute_set and hour_set and month_set, f"croniter accepted {expression!r}"
    times = _times_of_day(minute_set, hour_set)
    # L and W in the day field, and the last weekday of a month: croniter's expanded
    # fields do not say what they mean (15W comes back as 15), so croniter walks them.
    special = bool(nth_weekday) or any(c.isalpha() for c in expression.split()[2])
    matching = _matching_days(expression, None if special else days, month_set, weekdays)
    if len(matching) < 2:
        return None
    within = max((b - a for a, b in itertools.pairwise(times)), default=0)
    apart = max(b - a for a, b in itertools.pairwise(matching))
    return max(within, apart * DAY + times[0] - times[-1])
