"""Comments under the Page's posts as a capture source (DESIGN sections 1 and 10).

A comment allows exactly one private reply within 7 days (reference section 8). We send it as a
`private_reply` delivery inviting the person to Messenger with a `user_email` quick reply. The
reply's echo names the commenter's PSID (the Send API addressed the comment; Meta answers in
the thread), which is proof enough to join the commenter to that PSID. The address the person
then taps is Meta's verified address for them, recorded with source `comment`.

The commenter (a Facebook user id, not a PSID) gets a contact so the delivery has one; a second
comment by the same person reuses it, and gets no reply while the first is recent or once we
know their address.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orchestrator import contacts, deliveries
from orchestrator.capture.sending import PRIVATE_REPLY
from orchestrator.ids import new_id
from orchestrator.models import CommentReply, Contact, EmailIdentity, MessengerIdentity, table_of

PRIVATE_REPLY_WINDOW = timedelta(days=7)
# One invitation per commenter per Page in this period, however many comments they write.
PER_AUTHOR = timedelta(days=7)
REPLY_TEXT = {
    "vi": "Cảm ơn bạn đã bình luận! Shop nhắn riêng để tư vấn kỹ hơn. Bạn để lại email để nhận "
    "ưu đãi và được hỗ trợ nhanh hơn nhé?",
    "en": "Thanks for your comment! Share your email to get offers and faster help?",
}


def reply_message(language: str = "vi") -> dict[str, Any]:
    return {
        "text": REPLY_TEXT.get(language, REPLY_TEXT["vi"]),
        "quick_replies": [{"content_type": "user_email"}],
    }


async def _live_contact(session: AsyncSession, contact_id: str) -> Contact | None:
    contact = await session.get(Contact, contact_id)
    for _ in range(10):  # merges chain rarely; never loop forever on bad data
        if contact is None or contact.merged_into is None:
            return contact
        contact = await session.get(Contact, contact.merged_into)
    return None


async def on_comment(
    session: AsyncSession,
    *,
    workspace_id: str,
    page_id: str,
    value: dict[str, Any],
    at: datetime,
    now: datetime,
) -> str | None:
    """Queue the private reply a new comment allows; returns the delivery id, or None."""
    comment_id = value.get("comment_id")
    author = value.get("from") or {}
    from_id = str(author.get("id")) if author.get("id") is not None else None
    if not isinstance(comment_id, str) or not from_id or from_id == page_id:
        return None  # malformed, or the Page's own comment
    if now >= at + PRIVATE_REPLY_WINDOW:
        return None
    if await session.get(CommentReply, comment_id) is not None:
        return None  # replayed: a comment allows one reply
    replies = table_of(CommentReply)
    latest = (
        await session.execute(
            sa.select(replies.c.contact_id, replies.c.created_at)
            .where(replies.c.page_id == page_id, replies.c.from_id == from_id)
            .order_by(replies.c.created_at.desc())
            .limit(1)
        )
    ).first()
    if latest is not None and latest.created_at > now - PER_AUTHOR:
        return None
    contact = await _live_contact(session, latest.contact_id) if latest is not None else None
    if contact is not None:
        has_email = (
            await session.execute(
                sa.select(col(EmailIdentity.id))
                .where(col(EmailIdentity.contact_id) == contact.id)
                .limit(1)
            )
        ).first()
        if has_email is not None:
            return None  # we know how to reach them already
    if contact is None:
        name = author.get("name")
        contact = Contact(
            id=new_id("ct"),
            workspace_id=workspace_id,
            name=str(name)[:300] if name else None,
            created_at=now,
            updated_at=now,
        )
        session.add(contact)
        await session.flush()
    delivery = await deliveries.insert_one_off(
        session,
        workspace_id=workspace_id,
        contact_id=contact.id,
        page_id=page_id,
        kind=PRIVATE_REPLY,
        purpose="transactional",
        topic=None,
        content={
            "comment_id": comment_id,
            "message": reply_message(),
            "reply_until": (at + PRIVATE_REPLY_WINDOW).isoformat(),
        },
        now=now,
        idempotency_key=f"{PRIVATE_REPLY}:{comment_id}",
    )
    if delivery is None:
        return None
    session.add(
        CommentReply(
            comment_id=comment_id,
            workspace_id=workspace_id,
            page_id=page_id,
            from_id=from_id,
            contact_id=contact.id,
            delivery_id=delivery.id,
            created_at=now,
        )
    )
    await session.flush()
    return delivery.id


async def on_echo(
    session: AsyncSession,
    *,
    identity: MessengerIdentity,
    delivery_id: object,
    now: datetime,
) -> None:
    """The echo of a private reply: the PSID it reached is the commenter's."""
    if not isinstance(delivery_id, str):
        return
    replies = table_of(CommentReply)
    reply = (
        await session.execute(
            sa.select(replies.c.from_id, replies.c.contact_id).where(
                replies.c.delivery_id == delivery_id,
                replies.c.workspace_id == identity.workspace_id,
                replies.c.page_id == identity.page_id,
            )
        )
    ).first()
    if reply is None:
        return
    commenter = await _live_contact(session, reply.contact_id)
    if commenter is not None and commenter.id != identity.contact_id:
        await contacts.merge_contacts(
            session,
            workspace_id=identity.workspace_id,
            contact_id=commenter.id,
            other_id=identity.contact_id,
            now=now,
        )
        await session.refresh(identity)
    await session.execute(
        sa.update(replies)
        .where(replies.c.page_id == identity.page_id, replies.c.from_id == reply.from_id)
        .values(contact_id=identity.contact_id)
    )


async def consent_source(session: AsyncSession, *, contact_id: str, page_id: str) -> str:
    """`comment` for an address tapped after our private reply, else `messenger_quick_reply`."""
    replies = table_of(CommentReply)
    contacts_table = table_of(Contact)
    # A merge through the API leaves our rows naming the contact that was merged away.
    merged_here = sa.select(contacts_table.c.id).where(contacts_table.c.merged_into == contact_id)
    found = await session.execute(
        sa.select(replies.c.comment_id)
        .where(
            sa.or_(replies.c.contact_id == contact_id, replies.c.contact_id.in_(merged_here)),
            replies.c.page_id == page_id,
        )
        .limit(1)
    )
    return "comment" if found.first() is not None else "messenger_quick_reply"
