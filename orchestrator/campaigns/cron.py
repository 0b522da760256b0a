"""A pure parser for five-field cron expressions (`m h dom mon dow`), used to check
`schedule.cron` when a campaign is saved.

Each field accepts `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from a to the
field's maximum), and comma lists of those. Months accept `jan`-`dec` and days of the week
`sun`-`sat` (any case). Day of week 7 is Sunday, as 0. Nicknames (`@daily`), `?`, `L`, `W` and `#`
are refused rather than half-supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

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


@dataclass(frozen=True)
class CronExpression:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday; a 7 in the source is folded into 0


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
