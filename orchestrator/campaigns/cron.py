"""A pure parser for five-field cron expressions (`m h dom mon dow`), used to check
`schedule.cron` when a campaign is saved, and `next_occurrence` to find when it next fires.

Each field accepts `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from a to the
field's maximum), and comma lists of those. Months accept `jan`-`dec` and days of the week
`sun`-`sat` (any case). Day of week 7 is Sunday, as 0. Nicknames (`@daily`), `?`, `L`, `W` and `#`
are refused rather than half-supported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

_MONTHS: Final = (
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
)
_DAYS: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS: Final = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, {name: index + 1 for index, name in enumerate(_MONTHS)}),
    _Field("day of week", 0, 7, {name: index for index, name in enumerate(_DAYS)}),
)


_ALL_MINUTES: Final = frozenset(range(60))
_ALL_HOURS: Final = frozenset(range(24))
_ALL_DAYS_OF_MONTH: Final = frozenset(range(1, 32))
_ALL_DAYS_OF_WEEK: Final = frozenset(range(7))
# Feb 29 can be 8 years away (2096 -> 2104, 2100 is not a leap year); every satisfiable
# expression fires within that, so searching further would only delay the ValueError.
_SEARCH_DAYS: Final = 8 * 366
_MICROSECOND: Final = timedelta(microseconds=1)


@dataclass(frozen=True)
class CronExpression:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday; a 7 in the source is folded into 0
    # A field is restricted when its set is not the field's full range. Derived from the sets
    # rather than passed in, so the flags can never contradict them (and so parse_cron and any
    # direct construction agree). Vixie cron looks at the text instead (a field starting with
    # `*` is unrestricted): the two differ only for spellings like `*/2` (restricted here) or
    # `1-31` / `0-6` (unrestricted here).
    dom_restricted: bool = field(init=False)
    dow_restricted: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dom_restricted", self.days_of_month != _ALL_DAYS_OF_MONTH)
        object.__setattr__(self, "dow_restricted", self.days_of_week != _ALL_DAYS_OF_WEEK)


def parse_cron(expression: str) -> CronExpression:
    """Parse `expression`; raises ValueError naming the field at fault."""
    parts = expression.split()
    if len(parts) != len(_FIELDS):
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)}"
        )
    values = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    days_of_week = frozenset(0 if day == 7 else day for day in values[4])
    return CronExpression(values[0], values[1], values[2], values[3], days_of_week)


def next_occurrence(expression: CronExpression, zone: ZoneInfo, after: datetime) -> datetime:
    """The first whole minute strictly after `after` (aware, any zone) at which `expression`
    fires on the wall clock of `zone`, as an aware UTC datetime.

    Matching follows Vixie cron / POSIX: minute, hour and month must match; when both day of
    month and day of week are restricted a day matches if EITHER does, otherwise the restricted
    one alone decides ("restricted" as defined on CronExpression).

    Daylight saving, as cronie handles its own zone:
    - a wall time inside a spring-forward gap does not exist. If both minute and hour are
      restricted (a fixed-time job) it fires once at the jump instant, the first instant after the
      gap; several gap times collapse into that one firing. If minute or hour is unrestricted
      (a wildcard job, which fires again soon anyway) the gap times are skipped, as cronie does.
    - a wall time repeated in a fall-back hour fires once, at its first occurrence (fold=0).
      cronie does this for fixed-time jobs but repeats wildcard jobs during the second pass;
      here every expression fires once.

    Results are whole minutes of wall time, hence whole UTC minutes in every zone whose offsets
    (and transition instants) are whole minutes, as every offset in use today is.

    Raises ValueError if `after` is naive or if the expression never fires within about eight
    years (e.g. `0 0 31 2 *`), which means it never fires at all.
    """
    if after.utcoffset() is None:
        raise ValueError("next_occurrence needs an aware datetime")
    after_utc = after.astimezone(UTC)
    start = after_utc.astimezone(zone)
    hours = sorted(expression.hours)
    minutes = sorted(expression.minutes)
    fixed_time = expression.minutes != _ALL_MINUTES and expression.hours != _ALL_HOURS
    # Wall times before the local time of `after` map to instants at or before it (instants grow
    # with wall time when each wall time takes its first occurrence), so the search starts there.
    earliest = (start.hour, start.minute)
    day = start.date()
    last_day = day + timedelta(days=_SEARCH_DAYS)
    while day <= last_day:
        if day.month not in expression.months:
            day = _first_of_next_month(day)
            continue
        if _day_matches(expression, day):
            for hour in hours:
                for minute in minutes:
                    if day == start.date() and (hour, minute) < earliest:
                        continue
                    instant = _instant(datetime.combine(day, time(hour, minute)), zone, fixed_time)
                    if instant is not None and instant > after_utc:
                        return instant
        day += timedelta(days=1)
    raise ValueError(f"the cron expression never fires (searched {_SEARCH_DAYS} days ahead)")


def _day_matches(expression: CronExpression, day: date) -> bool:
    in_month = day.day in expression.days_of_month
    in_week = day.isoweekday() % 7 in expression.days_of_week
    if expression.dom_restricted and expression.dow_restricted:
        return in_month or in_week
    # The unrestricted field holds every value, so "and" leaves the restricted one to decide.
    return in_month and in_week


def _first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _instant(wall: datetime, zone: ZoneInfo, fixed_time: bool) -> datetime | None:
    """The UTC instant at which naive `wall` fires in `zone`, None when it never does."""
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    # fold=0 picks the first occurrence of a repeated wall time; a wall time inside a gap is the
    # one that does not survive the round trip.
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    if not fixed_time:
        return None
    # Inside a gap fold=1 reads the wall time with the offset after the jump and lands before
    # it, fold=0 with the offset before the jump and lands after it.
    return _jump_between(zone, wall.replace(tzinfo=zone, fold=1).astimezone(UTC), instant)


def _jump_between(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first instant in (before, after] that has `after`'s UTC offset."""
    target = after.astimezone(zone).utcoffset()
    low, high = 0, (after - before) // _MICROSECOND
    while high - low > 1:
        middle = (low + high) // 2
        if (before + middle * _MICROSECOND).astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return before + high * _MICROSECOND


def _parse_field(text: str, spec: _Field) -> frozenset[int]:
    result: set[int] = set()
    for item in text.split(","):
        result.update(_parse_item(item, spec))
    return frozenset(result)


def _parse_item(item: str, spec: _Field) -> range:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        step = _number(step_text, spec, what="step")
        if step < 1:
            raise ValueError(f"{spec.name}: a step must be at least 1, got {item!r}")
    if base == "*":
        low, high = spec.low, spec.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _value(first, spec), _value(last, spec)
        if low > high:
            raise ValueError(f"{spec.name}: range {base!r} runs backwards")
    else:
        low = _value(base, spec)
        high = spec.high if slash else low
    return range(low, high + 1, step)


def _value(text: str, spec: _Field) -> int:
    named = spec.names.get(text.lower())
    if named is not None:
        return named
    value = _number(text, spec, what="value")
    if not spec.low <= value <= spec.high:
        raise ValueError(f"{spec.name}: {value} is outside {spec.low}-{spec.high}")
    return value


def _number(text: str, spec: _Field, *, what: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"{spec.name}: {what} {text!r} is not a number")
    return int(text)
