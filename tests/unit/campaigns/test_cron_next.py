"""When a cron schedule next fires: Vixie day rule, DST gaps and repeats, impossible expressions.

The properties compare `next_occurrence` with brute force written from the rules, not from the
implementation: minute by minute for expressions that fire at least daily, day by day for the
day-of-month / month / day-of-week rule.
"""

from __future__ import annotations

import time as perf
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.campaigns.cron import CronExpression, next_occurrence, parse_cron

BERLIN = ZoneInfo("Europe/Berlin")  # 2025: spring forward Mar 30 02:00, fall back Oct 26 03:00
NEW_YORK = ZoneInfo("America/New_York")  # 2025: spring forward Mar 9 02:00, fall back Nov 2 02:00
SAIGON = ZoneInfo("Asia/Ho_Chi_Minh")  # UTC+7, no DST
UTC_ZONE = ZoneInfo("UTC")
MINUTE = timedelta(minutes=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def next_of(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    return next_occurrence(parse_cron(expression), zone, after)


# --- fixed cases ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "after",
    [
        utc(2025, 6, 1, 10, 0),
        datetime(2025, 6, 1, 10, 0, 0, 1, tzinfo=UTC),
        datetime(2025, 6, 1, 10, 0, 30, tzinfo=UTC),
        datetime(2025, 6, 1, 10, 0, 59, 999_999, tzinfo=UTC),
    ],
)
def test_every_minute_is_the_next_whole_minute_strictly_after(after: datetime) -> None:
    result = next_of("* * * * *", SAIGON, after)
    assert result == utc(2025, 6, 1, 10, 1)
    assert result.tzinfo is UTC


def test_every_minute_crosses_midnight_and_year() -> None:
    after = datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert next_of("* * * * *", UTC_ZONE, after) == utc(2026, 1, 1)


def test_monday_nine_in_saigon_from_a_sunday() -> None:
    sunday = datetime(2025, 6, 1, 15, 0, tzinfo=SAIGON)
    assert next_of("0 9 * * 1", SAIGON, sunday) == utc(2025, 6, 2, 2)


def test_an_occurrence_is_not_its_own_next() -> None:
    monday = utc(2025, 6, 2, 2)
    assert next_of("0 9 * * 1", SAIGON, monday) == utc(2025, 6, 9, 2)
    assert next_of("0 9 * * 1", SAIGON, monday - timedelta(microseconds=1)) == monday


def test_after_may_be_in_any_zone() -> None:
    sunday_in_berlin = datetime(2025, 6, 1, 21, 0, tzinfo=BERLIN)  # Monday 02:00 in Saigon
    assert next_of("0 9 * * 1", SAIGON, sunday_in_berlin) == utc(2025, 6, 2, 2)
    india = timezone(timedelta(hours=5, minutes=30))
    assert next_of("0 9 * * 1", SAIGON, datetime(2025, 6, 2, 7, 29, tzinfo=india)) == utc(
        2025, 6, 2, 2
    )


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_of("* * * * *", SAIGON, datetime(2025, 6, 1))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("expression", "expected_day"),
    [
        # 2025-06-01 is a Sunday; June 6 a Friday, June 13 a Friday the 13th.
        ("0 12 13 * 5", 6),  # both restricted: the 13th OR a Friday
        ("0 12 13 * *", 13),  # only day of month restricted
        ("0 12 * * 5", 6),  # only day of week restricted
        ("0 12 10 * 5", 6),  # OR: the Friday comes before the 10th
        ("0 12 3 * 5", 3),  # OR: the 3rd comes before the Friday
        # Restricted means the set is not the full range, whatever the spelling:
        ("0 12 */2 * 5", 3),  # days 1,3,5,... are restricted, so OR: the 3rd (a Tuesday)
        ("0 12 1-31 * 5", 6),  # 1-31 is every day, so only Friday counts
        ("0 12 13 * 0-7", 13),  # 0-7 is every weekday, so only the 13th counts
    ],
)
def test_day_of_month_and_day_of_week(expression: str, expected_day: int) -> None:
    after = utc(2025, 6, 1, 13)
    assert next_of(expression, UTC_ZONE, after) == utc(2025, 6, expected_day, 12)


def test_restricted_flags_follow_the_sets() -> None:
    assert not parse_cron("0 0 * * *").dom_restricted
    assert not parse_cron("0 0 * * *").dow_restricted
    assert parse_cron("0 0 */2 * *").dom_restricted
    assert parse_cron("0 0 * * mon").dow_restricted
    assert not parse_cron("0 0 1-31 * 0-7").dom_restricted
    assert not parse_cron("0 0 1-31 * 0-7").dow_restricted
    built = CronExpression(
        frozenset({0}), frozenset({0}), frozenset({1}), frozenset(range(1, 13)), frozenset({1})
    )
    assert built.dom_restricted and built.dow_restricted
    assert built == parse_cron("0 0 1 * 1")


def test_february_29_is_found_years_ahead_quickly() -> None:
    cron = parse_cron("0 0 29 2 *")
    started = perf.perf_counter()
    assert next_occurrence(cron, UTC_ZONE, utc(2025, 1, 1)) == utc(2028, 2, 29)
    # 2100 is not a leap year: the longest wait there is.
    assert next_occurrence(cron, UTC_ZONE, utc(2096, 2, 29)) == utc(2104, 2, 29)
    assert next_occurrence(cron, SAIGON, utc(2028, 2, 28, 16, 59)) == utc(2028, 2, 28, 17)
    # A minute-by-minute scan over eight years would take many seconds.
    assert perf.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "expression", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "* * 30,31 feb *"]
)
def test_an_expression_that_never_fires_raises(expression: str) -> None:
    started = perf.perf_counter()
    with pytest.raises(ValueError, match="never fires"):
        next_of(expression, BERLIN, utc(2025, 1, 1))
    assert perf.perf_counter() - started < 0.5


def test_february_30_or_a_monday_fires_on_mondays() -> None:
    # Day of week restricted too, so the OR rule makes an impossible day of month harmless.
    assert next_of("0 0 30 2 mon", UTC_ZONE, utc(2025, 1, 1)) == utc(2025, 2, 3)


# --- daylight saving ------------------------------------------------------------------------------


def test_berlin_spring_forward_fixed_time_in_the_gap_fires_at_the_jump() -> None:
    # 2025-03-30: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; 02:30 does not exist.
    assert next_of("30 2 * * *", BERLIN, utc(2025, 3, 30, 0, 0)) == utc(2025, 3, 30, 1)
    assert next_of("30 2 * * *", BERLIN, utc(2025, 3, 30, 1)) == utc(2025, 3, 31, 0, 30)


def test_berlin_spring_forward_gap_times_collapse_into_one_firing() -> None:
    assert next_of("0,30 2 * * *", BERLIN, utc(2025, 3, 29, 23)) == utc(2025, 3, 30, 1)
    assert next_of("0,30 2 * * *", BERLIN, utc(2025, 3, 30, 1)) == utc(2025, 3, 31, 0)


def test_berlin_spring_forward_wildcard_hour_skips_the_gap() -> None:
    # As cronie: a job with `*` hours runs again at 03:30 anyway, so 02:30 is not made up.
    assert next_of("30 * * * *", BERLIN, utc(2025, 3, 30, 0, 30)) == utc(2025, 3, 30, 1, 30)
    assert next_of("* 2 * * *", BERLIN, utc(2025, 3, 30, 0)) == utc(2025, 3, 31, 0)


def test_berlin_spring_forward_times_around_the_gap_are_normal() -> None:
    assert next_of("59 1 * * *", BERLIN, utc(2025, 3, 30)) == utc(2025, 3, 30, 0, 59)
    assert next_of("0 3 * * *", BERLIN, utc(2025, 3, 30)) == utc(2025, 3, 30, 1)
    assert next_of("0 12 * * *", BERLIN, utc(2025, 3, 30)) == utc(2025, 3, 30, 10)


def test_berlin_fall_back_repeated_time_fires_once_at_first_occurrence() -> None:
    # 2025-10-26: 03:00 CEST falls back to 02:00 CET at 01:00 UTC; 02:00-02:59 happen twice.
    first = utc(2025, 10, 26, 0, 30)  # 02:30 CEST
    assert next_of("30 2 * * *", BERLIN, utc(2025, 10, 25, 22)) == first
    assert next_of("30 2 * * *", BERLIN, first) == utc(2025, 10, 27, 1, 30)
    during_second_pass = utc(2025, 10, 26, 1, 10)  # 02:10 CET
    assert next_of("30 2 * * *", BERLIN, during_second_pass) == utc(2025, 10, 27, 1, 30)


def test_berlin_fall_back_wildcard_does_not_repeat_the_hour() -> None:
    # After 02:30 CEST comes 03:00 CET, an hour and a half later in real time.
    assert next_of("0,30 * * * *", BERLIN, utc(2025, 10, 26, 0, 30)) == utc(2025, 10, 26, 2)
    assert next_of("0 12 * * *", BERLIN, utc(2025, 10, 26)) == utc(2025, 10, 26, 11)


def test_new_york_spring_forward() -> None:
    # 2025-03-09: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
    assert next_of("15 2 * * *", NEW_YORK, utc(2025, 3, 9, 5)) == utc(2025, 3, 9, 7)
    assert next_of("15 2 * * *", NEW_YORK, utc(2025, 3, 9, 7)) == utc(2025, 3, 10, 6, 15)
    assert next_of("15 * * * *", NEW_YORK, utc(2025, 3, 9, 6, 15)) == utc(2025, 3, 9, 7, 15)
    assert next_of("0 9 * * *", NEW_YORK, utc(2025, 3, 9)) == utc(2025, 3, 9, 13)


def test_new_york_fall_back() -> None:
    # 2025-11-02: 02:00 EDT falls back to 01:00 EST at 06:00 UTC; 01:00-01:59 happen twice.
    assert next_of("30 1 * * *", NEW_YORK, utc(2025, 11, 2, 4)) == utc(2025, 11, 2, 5, 30)
    assert next_of("30 1 * * *", NEW_YORK, utc(2025, 11, 2, 5, 30)) == utc(2025, 11, 3, 6, 30)
    assert next_of("0 9 * * *", NEW_YORK, utc(2025, 11, 2)) == utc(2025, 11, 2, 14)


# --- properties -----------------------------------------------------------------------------------

_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_TRANSITIONS = {
    "Asia/Ho_Chi_Minh": [utc(2025, 6, 1)],
    "Europe/Berlin": [utc(2025, 3, 30, 1), utc(2025, 10, 26, 1), utc(2026, 3, 29, 1)],
    "America/New_York": [utc(2025, 3, 9, 7), utc(2025, 11, 2, 6), utc(2026, 3, 8, 7)],
}
_OTHER_ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), BERLIN]


@st.composite
def zones_and_afters(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    """A zone and an instant, often in the day before one of the zone's DST changes."""
    name = draw(st.sampled_from(sorted(_TRANSITIONS)))
    if draw(st.booleans()):
        base = draw(st.sampled_from(_TRANSITIONS[name]))
        seconds = draw(st.integers(-26 * 3600, 2 * 3600) | st.integers(-3 * 3600, 0))
    else:
        base = _EPOCH
        seconds = draw(st.integers(min_value=0, max_value=3 * 366 * 24 * 3600))
    microseconds = draw(st.sampled_from([0, 1, 999_999]) | st.integers(0, 999_999))
    instant = base + timedelta(seconds=seconds, microseconds=microseconds)
    zone = ZoneInfo(name)
    return zone, instant.astimezone(draw(st.sampled_from([*_OTHER_ZONES, zone])))


def _list_field(values: st.SearchStrategy[int], max_size: int) -> st.SearchStrategy[str]:
    return st.sets(values, min_size=1, max_size=max_size).map(
        lambda chosen: ",".join(str(value) for value in sorted(chosen))
    )


# Hours 1-3 hold the DST changes of the sampled zones, so they are drawn often.
minute_fields = st.sampled_from(["*", "*/15", "*/7"]) | _list_field(st.integers(0, 59), 4)
hour_fields = (
    st.sampled_from(["*", "*/5", "2", "1-3", "2,14"])
    | _list_field(st.integers(1, 3), 2)
    | _list_field(st.integers(0, 23), 3)
)
day_of_month_fields = (
    st.sampled_from(["*", "*/2", "1-31", "31", "29,30"])
    | _list_field(st.integers(1, 31), 3)
    | _list_field(st.integers(28, 31), 2)
)
month_fields = st.sampled_from(["*", "2", "feb,apr", "4,6,9,11"]) | _list_field(
    st.integers(1, 12), 3
)
day_of_week_fields = st.sampled_from(["*", "0-7", "mon-fri"]) | _list_field(st.integers(0, 7), 2)


def _wall_matches(cron: CronExpression, wall: datetime) -> bool:
    """The Vixie rule, restated: restricted means the field's set is not its full range."""
    in_month = wall.day in cron.days_of_month
    in_week = (wall.weekday() + 1) % 7 in cron.days_of_week
    if cron.days_of_month != frozenset(range(1, 32)) and cron.days_of_week != frozenset(range(7)):
        day_ok = in_month or in_week
    else:
        day_ok = in_month and in_week
    return (
        day_ok
        and wall.month in cron.months
        and wall.hour in cron.hours
        and wall.minute in cron.minutes
    )


def _fires_at(cron: CronExpression, zone: ZoneInfo, instant: datetime) -> bool:
    """Whether the whole UTC minute `instant` is a firing, by the documented DST rules."""
    wall = instant.astimezone(zone)
    if wall.replace(fold=0).astimezone(UTC) != instant:
        return False  # the second pass of a repeated wall time
    naive = wall.replace(tzinfo=None)
    if _wall_matches(cron, naive):
        return True
    previous = (instant - MINUTE).astimezone(zone).replace(tzinfo=None)
    skipped = (naive - previous) // MINUTE - 1  # wall minutes that never happened just before
    fixed_time = cron.minutes != frozenset(range(60)) and cron.hours != frozenset(range(24))
    return fixed_time and any(
        _wall_matches(cron, previous + step * MINUTE) for step in range(1, skipped + 1)
    )


def _assert_first_firing_after(cron: CronExpression, zone: ZoneInfo, after: datetime) -> None:
    result = next_occurrence(cron, zone, after)

    assert result.tzinfo is UTC
    assert result > after
    assert result.second == 0 and result.microsecond == 0
    assert _fires_at(cron, zone, result)
    if not _wall_matches(cron, result.astimezone(zone).replace(tzinfo=None)):
        # Only a fixed-time wall clock lost in a spring-forward gap fires off its own time.
        assert result.astimezone(zone).utcoffset() != (result - MINUTE).astimezone(zone).utcoffset()
    # Daily expressions fire within two days (one if no spring-forward gap swallows a wildcard
    # hour), so the brute force stays small.
    assert result - after <= timedelta(hours=49)
    candidate = after.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
    while candidate < result:
        assert not _fires_at(cron, zone, candidate), candidate
        candidate += MINUTE


@settings(max_examples=150, deadline=None)
@given(zone_and_after=zones_and_afters(), minutes=minute_fields, hours=hour_fields)
def test_next_occurrence_is_the_first_firing_minute_after(
    zone_and_after: tuple[ZoneInfo, datetime], minutes: str, hours: str
) -> None:
    zone, after = zone_and_after
    _assert_first_firing_after(parse_cron(f"{minutes} {hours} * * *"), zone, after)


_DST_CHANGES = [
    (BERLIN, utc(2025, 3, 30, 1)),
    (BERLIN, utc(2025, 10, 26, 1)),
    (NEW_YORK, utc(2025, 3, 9, 7)),
    (NEW_YORK, utc(2025, 11, 2, 6)),
]


@settings(max_examples=150, deadline=None)
@given(
    change=st.sampled_from(_DST_CHANGES),
    seconds=st.integers(min_value=-3 * 3600, max_value=3600),
    minutes=minute_fields,
    hours=st.sampled_from(["*", "*/2", "2", "1-3", "2,14"]) | _list_field(st.integers(1, 3), 2),
)
def test_next_occurrence_is_the_first_firing_minute_around_dst_changes(
    change: tuple[ZoneInfo, datetime], seconds: int, minutes: str, hours: str
) -> None:
    zone, transition = change
    after = transition + timedelta(seconds=seconds)
    _assert_first_firing_after(parse_cron(f"{minutes} {hours} * * *"), zone, after)


def _day_matches(cron: CronExpression, day: date) -> bool:
    return _wall_matches(cron, datetime.combine(day, time(12)))


@settings(max_examples=150, deadline=None)
@given(
    zone_and_after=zones_and_afters(),
    days_of_month=day_of_month_fields,
    months=month_fields,
    days_of_week=day_of_week_fields,
)
def test_next_occurrence_picks_the_first_matching_day_or_raises(
    zone_and_after: tuple[ZoneInfo, datetime], days_of_month: str, months: str, days_of_week: str
) -> None:
    zone, after = zone_and_after
    # Noon is clear of every DST change of the sampled zones, so only the day rule decides.
    cron = parse_cron(f"0 12 {days_of_month} {months} {days_of_week}")

    def noon(day: date) -> datetime:
        return datetime.combine(day, time(12), tzinfo=zone).astimezone(UTC)

    first_day = after.astimezone(zone).date()
    window = (first_day + timedelta(days=offset) for offset in range(9 * 366))
    expected = next(
        (day for day in window if _day_matches(cron, day) and noon(day) > after),
        None,
    )
    if expected is None:
        with pytest.raises(ValueError, match="never fires"):
            next_occurrence(cron, zone, after)
    else:
        assert next_occurrence(cron, zone, after) == noon(expected)
