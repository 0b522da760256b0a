"""A campaign's daily send window ("08:00"-"21:00") in the contact's time zone (DESIGN section 7).

Only wall-clock time counts: a window is open while the local time of day is in [start, end).
A window whose end is before its start crosses midnight ("21:00"-"06:00"). Daylight-saving jumps
are handled by asking the zone, never by adding hours to a local time: on a spring-forward day a
start inside the gap opens the window at the jump, on a fall-back day a repeated hour can open it
twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_MICROSECOND = timedelta(microseconds=1)


def _parse_hh_mm(value: str) -> time:
    match = _HH_MM.fullmatch(value)
    if match is None:
        raise ValueError(f"send window times are 'HH:MM' (00:00-23:59), got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class SendWindow:
    start: time
    end: time
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("a send window needs start != end; use no window to send at any time")

    @classmethod
    def parse(cls, *, start: str, end: str, zone: str) -> SendWindow:
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {zone!r}") from exc
        return cls(start=_parse_hh_mm(start), end=_parse_hh_mm(end), zone=tz)

    def contains(self, at: datetime) -> bool:
        wall = at.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end

    def next_opening(self, at: datetime) -> datetime:
        """The first instant at or after `at` inside the window, in UTC.

        The window opens either when the wall clock reaches `start` (once, or twice on a fall-back
        day) or at a zone transition that makes the wall clock jump into the window; those are the
        only candidates, collected for enough days around `at` to always include the next one.
        """
        if self.contains(at):
            return at.astimezone(UTC)
        local_day = at.astimezone(self.zone).date()
        candidates: list[datetime] = []
        for offset in range(-1, 4):
            day = local_day + timedelta(days=offset)
            candidates.extend(self._start_instants(day))
            transition = _transition_between(
                self.zone, self._midnight(day), self._midnight(day + timedelta(days=1))
            )
            if transition is not None:
                candidates.append(transition)
        return min(c for c in candidates if c > at and self.contains(c))

    def _start_instants(self, day: date) -> list[datetime]:
        instants = []
        for fold in (0, 1):
            local = datetime.combine(day, self.start, tzinfo=self.zone).replace(fold=fold)
            instant = local.astimezone(UTC)
            # A wall time inside a spring-forward gap does not survive the round trip.
            if instant.astimezone(self.zone).replace(tzinfo=None) == local.replace(tzinfo=None):
                instants.append(instant)
        return instants

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)


def _transition_between(zone: ZoneInfo, lo: datetime, hi: datetime) -> datetime | None:
    """The instant in (lo, hi] where the zone's UTC offset changes, if it does.

    Assumes at most one change per local day, which holds for every zone in the tz database today.
    """
    target = hi.astimezone(zone).utcoffset()
    if lo.astimezone(zone).utcoffset() == target:
        return None
    low, high = 0, (hi - lo) // _MICROSECOND
    while high - low > 1:
        middle = (low + high) // 2
        if (lo + middle * _MICROSECOND).astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return lo + high * _MICROSECOND
