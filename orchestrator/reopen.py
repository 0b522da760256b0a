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
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from channels.messenger.payloads import one_time_notif_request
from orchestrator import contacts, deliveries
from orchestrator.crypto import KeyRing
from orchestrator.delivery_states import Event, State, sources_of, transition
from orchestrator.ids import new_id
from orchestrator.links import Intent, LinkExpired, LinkInvalid, Ref, read_ref
from orchestrator.models import (
    Contact,
    Delivery,
    EmailIdentity,
    InteractionEvent,
    LinkBinding,
    MessengerIdentity,
    Page,
    table_of,
)

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


async def release_held(session: AsyncSession, *, contact_id: str, now: datetime) -> int:
    """Held messages go out on Messenger now that the window is open again."""
    table = table_of(Delivery)
    result = await session.execute(
        sa.update(table)
        .where(
            table.c.contact_id == contact_id,
            table.c.state.in_([s.value for s in sources_of(Event.RELEASE)]),
        )
        .values(
            state=transition(State.HELD, Event.RELEASE).value,
            due_at=now,
            next_attempt_at=None,
            updated_at=now,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


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
