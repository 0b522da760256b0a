"""Campaign durations: a whole number and one unit, `^\\d+[smhd]$` (DESIGN section 7)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

DURATION_PATTERN: Final = r"^\d+[smhd]$"
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """`"0s"`, `"90m"`, `"1h"`, `"3d"` to a timedelta; anything else (spaces, signs, `1.5h`,
    `1H`, `1h30m`) raises ValueError. Days are 24-hour days: durations are added in UTC."""
    # fullmatch, and ASCII digits only: `\d` alone would accept Arabic-Indic digits.
    match = _DURATION.fullmatch(text)
    if match is None or not match.group(1).isascii():
        raise ValueError(
            f"a duration is a whole number and one of s, m, h, d (e.g. '90m'), got {text!r}"
        )
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise ValueError(f"duration {text!r} is too long") from None
