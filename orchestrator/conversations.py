"""One-off Messenger sends a person asks for through the API, and conversations awaiting a person.

Human replies and opt-in requests are checked against the policy when asked (a 409 names the
reason when Messenger cannot carry them now) and then become delivery rows the dispatcher sends,
so they are idempotent, rate limited and counted like every other send (DESIGN section 4).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from channels.messenger.payloads import one_time_notif_request
from orchestrator import deliveries, reachability
from orchestrator.errors import Conflict, FieldError, NotFound
from orchestrator.models import Delivery, MessengerIdentity, table_of
from orchestrator.policy import (
    Fallback,
    MessageSpec,
    Purpose,
    Reason,
    Route,
    SendContext,
    decide,
)


class NotSendableNow(Conflict):
    slug = "not-sendable-now"
    title = "Messenger cannot carry this message now"


class DeliveryNotFound(NotFound):
    slug = "delivery-not-found"
    title = "Delivery not found"


async def _decide(
    session: AsyncSession,
    *,
    workspace_id: str,
    contact_id: str,
    page_id: str,
    spec: MessageSpec,
    now: datetime,
    quiet: timedelta,
) -> tuple[Any, reachability.ContactFacts]:
    facts = await reachability.load_facts(
        session, workspace_id=workspace_id, contact_id=contact_id, page_id=page_id
    )
    page = facts.pages.get(page_id)
    if page is None:
        raise NotFound(
            f"No Page {page_id!r} in this workspace",
            errors=[FieldError("page_id", "unknown page")],
        )
    identity = next((i for i in facts.identities if i.page_id == page_id), None)
    if identity is None:
        raise NotSendableNow(
            "The contact has no Messenger identity on this Page",
            extra={"reason": Reason.SKIPPED_NO_REACHABLE_CHANNEL.value},
        )
    context = SendContext(
        now=now,
        page=reachability.page_state(page),
        message=spec,
        email=reachability.email_state(facts.email, facts.workspace),
        messenger=reachability.messenger_state(identity, facts.tokens[identity.id], quiet=quiet),
    )
    decision = decide(context)
    if decision.route is not Route.MESSENGER:
        raise NotSendableNow(
            f"Messenger cannot carry it now: {decision.reason.value}",
            extra={"reason": decision.reason.value},
        )
    return decision, facts


async def send_human_reply(
    session: AsyncSession,
    *,
    workspace_id: str,
    contact_id: str,
    page_id: str,
    text: str,
    now: datetime,
    quiet: timedelta,
) -> Delivery:
    """RESPONSE inside the window, HUMAN_AGENT up to 7 days after the person's last message
    where the Page allows it; otherwise a 409 naming the reason."""
    spec = MessageSpec(
        purpose=Purpose.HUMAN_REPLY, written_by_person=True, is_reply=True, fallback=Fallback.SKIP
    )
    await _decide(
        session,
        workspace_id=workspace_id,
        contact_id=contact_id,
        page_id=page_id,
        spec=spec,
        now=now,
        quiet=quiet,
    )
    identities = table_of(MessengerIdentity)
    # A person answering clears the "waiting for a person" mark on this conversation.
    await session.execute(
        sa.update(identities)
        .where(identities.c.contact_id == contact_id, identities.c.page_id == page_id)
        .values(waiting_for_human_since=None)
    )
    delivery = await deliveries.insert_one_off(
        session,
        workspace_id=workspace_id,
        contact_id=contact_id,
        page_id=page_id,
        kind="human_reply",
        purpose=Purpose.HUMAN_REPLY.value,
        topic=None,
        content={"text": unicodedata.normalize("NFC", text)},
        now=now,
    )
    assert delivery is not None
    return delivery


async def request_optin(
    session: AsyncSession,
    *,
    workspace_id: str,
    contact_id: str,
    page_id: str,
    topic: str,
    title: str,
    now: datetime,
    quiet: timedelta,
) -> Delivery:
    """The Page's one-time notification request (reference 3.1), sent only inside the window
    and only where the profile and the Page's `otn_enabled` allow it."""
    spec = MessageSpec(purpose=Purpose.TRANSACTIONAL, topic=topic, fallback=Fallback.SKIP)
    decision, facts = await _decide(
        session,
        workspace_id=workspace_id,
        contact_id=contact_id,
        page_id=page_id,
        spec=spec,
        now=now,
        quiet=quiet,
    )
    page = facts.pages[page_id]
    profile_allows = page.policy_profile in ("meta-2026-04", "meta-2020-03")
    if decision.reason is not Reason.MESSENGER_WINDOW:
        raise NotSendableNow(
            "An opt-in request goes only inside the 24-hour window",
            extra={"reason": decision.reason.value},
        )
    if not (page.otn_enabled and profile_allows):
        raise NotSendableNow(
            "This Page has no one-time notification permission (otn_enabled is false)",
            extra={"reason": Reason.FAILED_CHANNEL_MISCONFIGURED.value},
        )
    attachment = one_time_notif_request(title, topic)
    delivery = await deliveries.insert_one_off(
        session,
        workspace_id=workspace_id,
        contact_id=contact_id,
        page_id=page_id,
        kind="optin_request",
        purpose=Purpose.TRANSACTIONAL.value,
        topic=topic,
        content=attachment,
        now=now,
    )
    assert delivery is not None
    return delivery


async def get_delivery(session: AsyncSession, *, workspace_id: str, delivery_id: str) -> Delivery:
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None or delivery.workspace_id != workspace_id:
        raise DeliveryNotFound(f"No delivery {delivery_id!r}")
    return delivery


async def conversations(
    session: AsyncSession, *, workspace_id: str, status: str, now: datetime, quiet: timedelta
) -> list[dict[str, Any]]:
    """`waiting_for_human`: the person asked for support; `taken_over`: a person on the Page
    inbox is answering and automated sends are paused."""
    table = table_of(MessengerIdentity)
    query = sa.select(table).where(table.c.workspace_id == workspace_id)
    if status == "waiting_for_human":
        query = query.where(table.c.waiting_for_human_since.is_not(None)).order_by(
            table.c.waiting_for_human_since
        )
    else:
        query = query.where(
            table.c.takeover_at.is_not(None), table.c.takeover_at > now - quiet
        ).order_by(table.c.takeover_at.desc())
    rows = (await session.execute(query.limit(500))).all()
    return [
        {
            "contact_id": row.contact_id,
            "page_id": row.page_id,
            "psid": row.psid,
            "waiting_since": row.waiting_for_human_since,
            "taken_over_at": row.takeover_at,
            "last_user_message_at": row.last_user_message_at,
            "window_opened_at": row.window_opened_at,
        }
        for row in rows
    ]
