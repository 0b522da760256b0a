"""Hypothesis strategies for random histories, consent, tokens, profiles, purposes and clocks.

`contexts()` draws everything at random. Times are drawn relative to `now`, with extra weight on the
exact boundaries (0, 24h, 7 days, one millisecond either side), and shown in a few zones so that
wall-clock mistakes would surface. A random context rarely lands where a narrow rule could break
(an automated HUMAN_AGENT candidate, a token with one flaw, a daylight-saving jump inside the
window), so the *tilts* below push a random context into such a region; `focused()` mixes random
and tilted contexts, `tilted()` gives tilted ones only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from orchestrator.policy import (
    EmailState,
    EmailStatus,
    Fallback,
    MessageSpec,
    MessengerState,
    OptInTokenState,
    PageState,
    Purpose,
    SendContext,
    SendWindow,
    TokenKind,
)

BASE = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
ZONES = [UTC, ZoneInfo("Asia/Ho_Chi_Minh"), ZoneInfo("America/New_York")]
KNOWN_PROFILES = ["meta-2026-04", "meta-2020-03"]
TOPICS = [None, "sale", "news"]

# True about one time in five (or ten); False comes first so shrinking heads for the plain case.
rarely = st.sampled_from([False, False, False, False, True])
seldom = st.sampled_from([False] * 9 + [True])
# HUMAN_AGENT needs several facts at once, so human replies are drawn more often.
purposes = st.sampled_from([*Purpose, Purpose.HUMAN_REPLY, Purpose.HUMAN_REPLY])
near = st.sampled_from([-MS, timedelta(0), MS])
offsets = st.one_of(
    st.sampled_from([edge + d for edge in (timedelta(0), DAY, 7 * DAY) for d in (-MS, 0 * MS, MS)]),
    st.integers(-2 * 86_400_000, 9 * 86_400_000).map(lambda ms: ms * MS),
)
send_windows = st.sampled_from(
    [
        ("08:00", "21:00", "Asia/Ho_Chi_Minh"),
        ("21:00", "06:00", "Asia/Ho_Chi_Minh"),
        ("02:30", "05:00", "America/New_York"),
        ("09:00", "17:00", "Europe/Berlin"),
    ]
).map(lambda w: SendWindow.parse(start=w[0], end=w[1], zone=w[2]))


def shift(moment: datetime, delta: timedelta) -> datetime:
    """`moment + delta` in absolute time, shown in `moment`'s zone (aware `+` is wall-clock)."""
    return (moment.astimezone(UTC) + delta).astimezone(moment.tzinfo)


@st.composite
def maybe_moment(draw: st.DrawFn, now: datetime, *, past: bool = True) -> datetime | None:
    """None, or a time near `now`: `past` ones mostly before it, others mostly after it."""
    if draw(st.booleans()):
        return None
    offset = draw(offsets)
    return shift(now, -offset if past else offset)


@st.composite
def identities(draw: st.DrawFn, now: datetime) -> MessengerState | None:
    if draw(rarely):
        return None
    tokens = tuple(
        OptInTokenState(
            id=f"tok-{index}",
            kind=draw(st.sampled_from(TokenKind)),
            topic=draw(st.sampled_from(["sale", "news"])),
            expires_at=draw(maybe_moment(now, past=False)) or shift(now, DAY),
            used=draw(rarely),
            stopped=draw(rarely),
        )
        for index in range(draw(st.integers(0, 2)))
    )
    return MessengerState(
        last_window_event_at=draw(maybe_moment(now)),
        last_user_message_at=draw(maybe_moment(now)),
        stopped=draw(rarely),
        takeover_until=draw(maybe_moment(now, past=False)) if draw(rarely) else None,
        unavailable_until=draw(maybe_moment(now, past=False)) if draw(rarely) else None,
        tokens=tokens,
    )


@st.composite
def contexts(draw: st.DrawFn, *, known_profile: bool = True) -> SendContext:
    instant = BASE + draw(st.integers(-300 * 86_400_000, 300 * 86_400_000)) * MS
    now = instant.astimezone(draw(st.sampled_from(ZONES)))
    unknown = not known_profile and draw(seldom)
    return SendContext(
        now=now,
        page=PageState(
            profile="meta-1999-01" if unknown else draw(st.sampled_from(KNOWN_PROFILES)),
            human_agent_enabled=draw(st.booleans()),
            otn_enabled=draw(st.booleans()),
            paused=draw(seldom),
        ),
        message=MessageSpec(
            purpose=draw(purposes),
            topic=draw(st.sampled_from(TOPICS)),
            written_by_person=draw(st.booleans()),
            is_reply=draw(st.booleans()),
            fallback=draw(st.sampled_from(Fallback)),
            hold_deadline=draw(maybe_moment(now, past=False)),
        ),
        email=EmailState(
            status=draw(st.sampled_from([None, *EmailStatus])),
            transactional_to_unconfirmed=draw(st.booleans()),
        ),
        messenger=draw(identities(now)),
        frequency_cap_reached=draw(rarely),
        cancelled=draw(seldom),
        send_window=draw(send_windows) if draw(rarely) else None,
    )


# --- tilts --------------------------------------------------------------------------------------

DST_TRANSITIONS = [
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # America/New_York spring forward
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # America/New_York fall back
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # Europe/Berlin spring forward
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),  # Europe/Berlin fall back
]
DST_ZONES = [ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")]


def _ungated(ctx: SendContext) -> SendContext:
    return replace(
        ctx,
        cancelled=False,
        frequency_cap_reached=False,
        send_window=None,
        page=replace(ctx.page, paused=False),
    )


def _identity(ctx: SendContext) -> MessengerState:
    return ctx.messenger if ctx.messenger is not None else MessengerState()


def _closed_window_event(draw: st.DrawFn, now: datetime) -> datetime | None:
    if draw(rarely):
        return None
    return shift(now, -DAY - draw(st.integers(0, 3 * 86_400_000)) * MS)


@st.composite
def human_agent_tilt(draw: st.DrawFn, ctx: SendContext) -> SendContext:
    """Window closed, the person's last message around the 7-day edge, any purpose or author."""
    since_message = st.one_of(near.map(lambda d: 7 * DAY + d), offsets)
    identity = replace(
        _identity(ctx),
        last_window_event_at=_closed_window_event(draw, ctx.now),
        last_user_message_at=shift(ctx.now, -draw(since_message)),
    )
    message = replace(ctx.message, purpose=draw(purposes))
    page = replace(ctx.page, human_agent_enabled=draw(st.booleans()))
    return _ungated(replace(ctx, messenger=identity, message=message, page=page))


@st.composite
def near_valid_token(draw: st.DrawFn, now: datetime, index: int) -> OptInTokenState:
    """A usable one-time token for "sale", or one with exactly one thing wrong with it."""
    token = OptInTokenState(
        id=f"tok-{index}",
        kind=TokenKind.ONE_TIME,
        topic="sale",
        expires_at=shift(now, draw(st.sampled_from([MS, HOUR, 30 * DAY]))),
    )
    flaw = draw(st.sampled_from([None, None, None, "kind", "topic", "used", "stopped", "expired"]))
    if flaw == "kind":
        return replace(token, kind=TokenKind.RECURRING)
    if flaw == "topic":
        return replace(token, topic="news")
    if flaw == "used":
        return replace(token, used=True)
    if flaw == "stopped":
        return replace(token, stopped=True)
    if flaw == "expired":
        return replace(token, expires_at=shift(now, -draw(st.sampled_from([0 * MS, MS]))))
    return token


@st.composite
def token_tilt(draw: st.DrawFn, ctx: SendContext) -> SendContext:
    """Window closed, an unblocked identity, tokens that are valid or have exactly one flaw."""
    count = draw(st.sampled_from([1, 1, 2, 3]))
    identity = MessengerState(
        last_window_event_at=_closed_window_event(draw, ctx.now),
        last_user_message_at=_identity(ctx).last_user_message_at,
        tokens=tuple(draw(near_valid_token(ctx.now, i)) for i in range(count)),
    )
    message = replace(ctx.message, topic=draw(st.sampled_from(["sale", "sale", "sale", None])))
    page = replace(ctx.page, otn_enabled=draw(st.sampled_from([True, True, True, False])))
    return _ungated(replace(ctx, messenger=identity, message=message, page=page))


@st.composite
def boundary_tilt(draw: st.DrawFn, ctx: SendContext) -> SendContext:
    """Every deadline within a millisecond of `now`."""

    def near_now() -> datetime | None:
        return None if draw(st.booleans()) else shift(ctx.now, draw(near))

    identity = replace(
        _identity(ctx),
        last_window_event_at=shift(ctx.now, -DAY + draw(near)),
        takeover_until=near_now(),
        unavailable_until=near_now(),
    )
    message = replace(ctx.message, hold_deadline=near_now())
    return _ungated(replace(ctx, messenger=identity, message=message))


@st.composite
def blocked_tilt(draw: st.DrawFn, ctx: SendContext) -> SendContext:
    """An open window, and the person stopped, taken over or unavailable (or about to be free)."""
    until = shift(ctx.now, draw(st.one_of(near, st.just(HOUR))))
    block = draw(st.sampled_from(["stopped", "takeover", "unavailable"]))
    identity = replace(
        _identity(ctx),
        last_window_event_at=shift(ctx.now, -HOUR),
        stopped=block == "stopped",
        takeover_until=until if block == "takeover" else None,
        unavailable_until=until if block == "unavailable" else None,
    )
    email = replace(ctx.email, status=draw(st.sampled_from([EmailStatus.SUBSCRIBED, None])))
    return _ungated(replace(ctx, messenger=identity, email=email))


@st.composite
def dst_tilt(draw: st.DrawFn, ctx: SendContext) -> SendContext:
    """`now` just after a daylight-saving jump, history 24h or 7 days back, shown in that zone."""
    zone = draw(st.sampled_from(DST_ZONES))
    after_jump = draw(st.integers(0, 22 * 3_600_000)) * MS
    now = (draw(st.sampled_from(DST_TRANSITIONS)) + after_jump).astimezone(zone)
    around = draw(st.integers(-3_600_000, 3_600_000)) * MS
    message = ctx.message
    if draw(st.booleans()):
        window_event = last_message = shift(now, -DAY + around)
    else:
        window_event = shift(now, -2 * DAY)
        last_message = shift(now, -7 * DAY + around)
        message = replace(message, purpose=Purpose.HUMAN_REPLY, written_by_person=True)
    identity = MessengerState(last_window_event_at=window_event, last_user_message_at=last_message)
    page = replace(ctx.page, human_agent_enabled=True)
    return _ungated(replace(ctx, now=now, messenger=identity, message=message, page=page))


@st.composite
def gate_tilt(draw: st.DrawFn, ctx: SendContext) -> SendContext:
    """Something to send (an open window, or email), with the gates drawn at even odds."""
    identity = MessengerState(last_window_event_at=shift(ctx.now, -HOUR))
    return replace(
        ctx,
        messenger=identity if draw(st.booleans()) else None,
        page=replace(ctx.page, paused=draw(st.booleans())),
        frequency_cap_reached=draw(st.booleans()),
        send_window=draw(st.one_of(st.none(), send_windows)),
    )


@st.composite
def fallback_tilt(draw: st.DrawFn, ctx: SendContext) -> SendContext:
    """Messenger out of reach for some reason; the step's fallback and consent decide."""
    identity = None if draw(rarely) else _identity(ctx)
    if identity is not None:
        identity = replace(identity, last_window_event_at=_closed_window_event(draw, ctx.now))
    hold = st.one_of(near, st.sampled_from([-HOUR, HOUR]))
    message = replace(
        ctx.message,
        purpose=draw(st.sampled_from([Purpose.TRANSACTIONAL, Purpose.PROMOTIONAL])),
        hold_deadline=None if draw(rarely) else shift(ctx.now, draw(hold)),
    )
    statuses = st.sampled_from([EmailStatus.SUBSCRIBED, EmailStatus.UNCONFIRMED, None])
    email = replace(ctx.email, status=draw(statuses))
    return _ungated(replace(ctx, messenger=identity, message=message, email=email))


Tilt = Callable[[SendContext], st.SearchStrategy[SendContext]]
ALL_TILTS: tuple[Tilt, ...] = (
    human_agent_tilt,
    token_tilt,
    boundary_tilt,
    blocked_tilt,
    dst_tilt,
    gate_tilt,
    fallback_tilt,
)


def focused(*tilts: Tilt, known_profile: bool = True) -> st.SearchStrategy[SendContext]:
    """Random contexts, and as many again pushed into each of the given regions."""
    base = contexts(known_profile=known_profile)
    return st.one_of(base, *(base.flatmap(tilt) for tilt in tilts))


def tilted(*tilts: Tilt) -> st.SearchStrategy[SendContext]:
    """Only contexts pushed into the given regions."""
    base = contexts()
    return st.one_of(*(base.flatmap(tilt) for tilt in tilts))
