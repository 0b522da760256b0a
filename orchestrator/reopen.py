"""The reopen loop and identity proof (DESIGN section 6).

A fallback email's buttons lead through `/r/<token>` to `m.me/<page>?ref=<ref>`. When the person
arrives, Meta posts `messaging_referrals` (existing thread) or a Get Started postback carrying the
ref (new thread). A click proves only that someone holds the link, so a verified ref binds the PSID
to the ref's contact only when that contact has no identity on the Page yet and the ref has never
bound another PSID; otherwise a candidate link is recorded and the person confirms with a
`user_email` quick reply (whose tapped address must match). Then the reopen is attributed, held
messages are released, "subscribe" asks for the opt-in where the Page allows it, "support" marks
the conversation as waiting for a person.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from channels.messenger.payloads import one_time_notif_request
from orchestrator import contacts, deliveries
from orchestrator.campaigns import runs as campaign_runs
from orchestrator.campaigns import steps as campaign_steps
from orchestrator.crypto import KeyRing
from orchestrator.db import rows_affected
from orchestrator.delivery_states import Event, State, sources_of, transition
from orchestrator.ids import new_id
from orchestrator.links import Intent, LinkExpired, LinkInvalid, Ref, read_ref
from orchestrator.models import (
    Campaign,
    Contact,
    Delivery,
    EmailIdentity,
    InteractionEvent,
    LinkBinding,
    MessengerIdentity,
    Page,
    table_of,
)
from orchestrator.policy import Reason
from orchestrator.policy.window import window_open

OPTIN_TITLE_VI = "Nhận thông báo khi có tin mới?"


def ref_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _event(
    identity: MessengerIdentity, kind: str, data: dict[str, object], *, at: datetime, now: datetime
) -> InteractionEvent:
    return InteractionEvent(
        id=new_id("ev"),
        workspace_id=identity.workspace_id,
        contact_id=identity.contact_id,
        page_id=identity.page_id,
        psid=identity.psid,
        type=kind,
        delivery_id=data.get("delivery_id") if isinstance(data.get("delivery_id"), str) else None,  # type: ignore[arg-type]
        data=data,
        occurred_at=at,
        created_at=now,
    )


async def on_ref(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    identity: MessengerIdentity,
    token: str,
    at: datetime,
    now: datetime,
    request_email: bool,
) -> bool:
    """Apply a ref that arrived with an inbound event. Returns False when it is not one of ours
    (tampered, expired, another workspace's), so the caller treats the PSID as arriving without."""
    try:
        ref = read_ref(keyring, token, workspace_id=identity.workspace_id, now=at)
    except (LinkInvalid, LinkExpired) as exc:
        session.add(_event(identity, "ref_invalid", {"error": str(exc)[:200]}, at=at, now=now))
        return False
    target = await session.get(Contact, ref.contact_id)
    if target is None or target.workspace_id != identity.workspace_id or target.merged_into:
        session.add(_event(identity, "ref_invalid", {"error": "contact gone"}, at=at, now=now))
        return False
    bound = await _bind(session, identity=identity, ref=ref, token=token, at=at, now=now)
    if not bound:
        session.add(
            _event(
                identity,
                "candidate_link",
                {"candidate_contact_id": ref.contact_id, "delivery_id": ref.delivery_id},
                at=at,
                now=now,
            )
        )
        if request_email:
            await ask_for_email(session, identity, now=now, key_suffix=ref_hash(token)[:16])
        return True
    await session.refresh(identity)
    await _after_reopen(session, identity=identity, ref=ref, at=at, now=now)
    return True


async def _bind(
    session: AsyncSession,
    *,
    identity: MessengerIdentity,
    ref: Ref,
    token: str,
    at: datetime,
    now: datetime,
) -> bool:
    """True when the PSID now belongs to the ref's contact (bound now or already)."""
    digest = ref_hash(token)
    binding = await session.get(LinkBinding, digest)
    if identity.contact_id == ref.contact_id:
        return binding is None or binding.psid == identity.psid
    if binding is not None:
        return False  # this ref already bound another PSID (or this one to another contact)
    already_on_page = (
        await session.execute(
            sa.select(col(MessengerIdentity.id)).where(
                col(MessengerIdentity.contact_id) == ref.contact_id,
                col(MessengerIdentity.page_id) == identity.page_id,
            )
        )
    ).first()
    if already_on_page is not None:
        return False
    owner_email = (
        await session.execute(
            sa.select(col(EmailIdentity.address)).where(
                col(EmailIdentity.contact_id) == identity.contact_id
            )
        )
    ).first()
    if owner_email is not None:
        # The PSID's contact proved another address: never merge on a click alone.
        return False
    await contacts.merge_contacts(
        session,
        workspace_id=identity.workspace_id,
        contact_id=ref.contact_id,
        other_id=identity.contact_id,
        now=now,
    )
    await session.refresh(identity)
    session.add(
        LinkBinding(
            ref_hash=digest,
            workspace_id=identity.workspace_id,
            page_id=identity.page_id,
            psid=identity.psid,
            contact_id=identity.contact_id,
            created_at=now,
        )
    )
    await session.flush()
    return True


async def _after_reopen(
    session: AsyncSession, *, identity: MessengerIdentity, ref: Ref, at: datetime, now: datetime
) -> None:
    delivery = await session.get(Delivery, ref.delivery_id) if ref.delivery_id else None
    if delivery is not None and delivery.workspace_id != identity.workspace_id:
        delivery = None
    session.add(
        _event(
            identity,
            "reopen",
            {
                "delivery_id": delivery.id if delivery else None,
                "campaign_id": delivery.campaign_id if delivery else None,
                "intent": ref.intent.value,
            },
            at=at,
            now=now,
        )
    )
    await release_held(session, contact_id=identity.contact_id, now=now)
    if ref.intent is Intent.SUPPORT and identity.waiting_for_human_since is None:
        identity.waiting_for_human_since = at
    if ref.intent is Intent.SUBSCRIBE:
        page = (
            await session.execute(sa.select(Page).where(col(Page.page_id) == identity.page_id))
        ).scalar_one()
        if page.otn_enabled:
            topic = (delivery.topic if delivery else None) or "updates"
            await _insert_once(
                session,
                identity,
                kind="optin_request",
                key=f"optin_request:{identity.id}:{topic}:{at.date().isoformat()}",
                topic=topic,
                content=one_time_notif_request(OPTIN_TITLE_VI, topic),
                now=now,
            )


async def release_held(
    session: AsyncSession, *, contact_id: str, now: datetime, page_id: str | None = None
) -> int:
    """Held messages go out on Messenger now that the window is open again (only those for
    `page_id` when given: a window opens on one Page).

    `held_until` stays, so a message held again meanwhile keeps its original deadline. The
    planner's fallback mark goes: it said no Messenger window was usable when the step was
    planned, and with it the dispatcher would apply the fallback again and hold the message
    again instead of sending it in the window that is open now."""
    table = table_of(Delivery)
    query = sa.update(table).where(
        table.c.contact_id == contact_id,
        table.c.state.in_([s.value for s in sources_of(Event.RELEASE)]),
    )
    if page_id is not None:
        query = query.where(table.c.page_id == page_id)
    result = await session.execute(
        query.values(
            state=transition(State.HELD, Event.RELEASE).value,
            due_at=now,
            next_attempt_at=None,
            content=_without_fallback_mark(session, table.c.content),
            updated_at=now,
        )
    )
    return rows_affected(result)


def _without_fallback_mark(
    session: AsyncSession, content: sa.ColumnElement[Any]
) -> sa.ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        # jsonb - text: the object without that key (no-op when absent).
        return content.op("-", return_type=content.type)(
            sa.literal(campaign_steps.FALLBACK_NOW, sa.Text())
        )
    return sa.func.json_remove(content, f"$.{campaign_steps.FALLBACK_NOW}", type_=content.type)


@dataclass(frozen=True)
class WindowOpened:
    """What a window-opening event changed: deliveries re-planned and holds released."""

    replanned: int = 0
    released: int = 0


async def on_window_opened(
    session: AsyncSession, *, identity: MessengerIdentity, now: datetime
) -> WindowOpened:
    """The person wrote, tapped, followed a link or reacted: the window on this Page is open
    from `identity.window_opened_at` (DESIGN sections 6 and 7).

    - Window-relative steps still waiting (pending or deferred) move to the new window's end
      minus their margin, fitted into the campaign's send window; a deferred one is pending
      again. If the window cannot be used inside the send window, the fallback mark is set.
    - Held messages for this Page are released at once. They are re-planned neither here nor
      later: a released hold goes out now, in the window that just opened.

    One indexed query (contact, state) when the contact has nothing waiting. An event applied
    after the window it opened has closed (a backlog) changes nothing."""
    opened_at = identity.window_opened_at
    if opened_at is None or not window_open(opened_at, now):
        return WindowOpened()
    deliveries = table_of(Delivery)
    campaigns = table_of(Campaign)
    waiting = (State.PENDING.value, State.DEFERRED.value, State.HELD.value)
    rows = (
        await session.execute(
            sa.select(
                deliveries.c.id,
                deliveries.c.state,
                deliveries.c.step_index,
                deliveries.c.due_at,
                deliveries.c.content,
                deliveries.c.reason,
                campaigns.c.id.label("campaign_id"),
                campaigns.c.spec,
                campaigns.c.updated_at.label("campaign_updated_at"),
            )
            .select_from(deliveries.join(campaigns, campaigns.c.id == deliveries.c.campaign_id))
            .where(
                deliveries.c.contact_id == identity.contact_id,
                deliveries.c.state.in_(waiting),
                deliveries.c.kind == "step",
                deliveries.c.page_id == identity.page_id,
            )
        )
    ).all()
    if not rows:
        return WindowOpened()
    zone: str | None = None
    if any(row.state != State.HELD.value for row in rows):
        contact = await session.get(Contact, identity.contact_id)
        zone = contact.timezone if contact is not None else None
    replanned = 0
    for row in rows:
        if row.state == State.HELD.value or row.reason == Reason.HELD_UNTIL_WINDOW.value:
            continue
        spec = campaign_steps.parse_stored(
            row.campaign_id, row.spec, row.campaign_updated_at.isoformat()
        )
        if row.step_index is None or row.step_index >= len(spec.steps):
            continue
        if not spec.steps[row.step_index].delay.window_relative:
            continue
        # Planned again exactly as the planner plans it, from the new window-opening event.
        due_at, marks = campaign_runs.due_for(
            spec,
            row.step_index,
            previous_final_at=now,
            window_event_at=opened_at,
            zone=zone,
            now=now,
        )
        content = {
            k: v for k, v in (row.content or {}).items() if k != campaign_steps.FALLBACK_NOW
        } | marks
        state = (
            transition(row.state, Event.DUE) if row.state == State.DEFERRED.value else State.PENDING
        )
        if state.value == row.state and due_at == row.due_at and content == (row.content or {}):
            continue  # replayed, or an older event: the plan already stands
        result = await session.execute(
            sa.update(deliveries)
            # Conditional: a worker may have claimed the row since it was read.
            .where(deliveries.c.id == row.id, deliveries.c.state == row.state)
            .values(state=state.value, due_at=due_at, content=content, updated_at=now)
        )
        replanned += rows_affected(result)
    released = 0
    if any(row.state == State.HELD.value for row in rows):
        released = await release_held(
            session, contact_id=identity.contact_id, now=now, page_id=identity.page_id
        )
    return WindowOpened(replanned=replanned, released=released)


async def ask_for_email(
    session: AsyncSession, identity: MessengerIdentity, *, now: datetime, key_suffix: str = ""
) -> None:
    """A `user_email` quick reply as a delivery (DESIGN sections 4 and 6)."""
    contact = await session.get(Contact, identity.contact_id)
    english = bool(contact and contact.locale and contact.locale.lower().startswith("en"))
    text = (
        "Could you share your email so we can send offers and help faster?"
        if english
        else "Bạn cho shop xin email để nhận ưu đãi và hỗ trợ nhanh hơn nhé?"
    )
    await _insert_once(
        session,
        identity,
        kind="email_request",
        key=f"email_request:{identity.id}" + (f":{key_suffix}" if key_suffix else ""),
        topic=None,
        content={"text": text, "quick_replies": [{"content_type": "user_email"}]},
        now=now,
    )


async def _insert_once(
    session: AsyncSession,
    identity: MessengerIdentity,
    *,
    kind: str,
    key: str,
    topic: str | None,
    content: dict[str, object],
    now: datetime,
) -> None:
    await deliveries.insert_one_off(
        session,
        workspace_id=identity.workspace_id,
        contact_id=identity.contact_id,
        page_id=identity.page_id,
        kind=kind,
        purpose="transactional",
        topic=topic,
        content=dict(content),
        now=now,
        idempotency_key=key,
    )
