"""What recipients and mail systems tell us back: unsubscribes, bounces, complaints, clicks.

Each writes the consent ledger (the email status follows as its projection) and, for anything that
must stop mail for good, the suppression list, so no campaign ever emails that address again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orchestrator import contacts, suppression
from orchestrator.addresses import AddressInvalid, normalize_address
from orchestrator.crypto import KeyRing
from orchestrator.ids import new_id
from orchestrator.links import Click, Unsubscribe
from orchestrator.models import Delivery, EmailIdentity, InteractionEvent, Page, table_of

FeedbackKind = Literal["bounce", "complaint"]


@dataclass(frozen=True)
class UnsubscribeResult:
    address_hint: str
    already: bool


def _hint(address: str) -> str:
    """`l***@example.com`: enough for the person to recognise, not enough to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


async def unsubscribe(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    link: Unsubscribe,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
) -> UnsubscribeResult | None:
    """RFC 8058 one-click: no login, no further page. None when the identity is gone (erased),
    in which case the address is already suppressed."""
    identity = await session.get(EmailIdentity, link.email_identity_id)
    if identity is None or identity.workspace_id != link.workspace_id:
        return None
    already = identity.status in ("unsubscribed", "bounced", "complained")
    await contacts.record_consent(
        session,
        identity=identity,
        action="unsubscribe",
        consent=contacts.Consent(
            source="unsubscribe_link", at=now, ip=ip, user_agent=(user_agent or "")[:500] or None
        ),
        now=now,
    )
    await suppression.suppress(
        session,
        keyring,
        workspace_id=identity.workspace_id,
        address=identity.address,
        reason="unsubscribed",
        now=now,
    )
    return UnsubscribeResult(address_hint=_hint(identity.address), already=already)


async def record_feedback(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    workspace_id: str,
    kind: FeedbackKind,
    address: str,
    occurred_at: datetime,
    now: datetime,
) -> bool:
    """A bounce or complaint report. Returns whether the address is one of ours; an unknown
    address is still suppressed (so a later import cannot subscribe it)."""
    try:
        normalized = normalize_address(address)
    except AddressInvalid:
        return False
    await suppression.suppress(
        session,
        keyring,
        workspace_id=workspace_id,
        address=normalized,
        reason="complained" if kind == "complaint" else "bounced",
        now=now,
    )
    identity = (
        await session.execute(
            sa.select(EmailIdentity).where(
                col(EmailIdentity.workspace_id) == workspace_id,
                col(EmailIdentity.address) == normalized,
            )
        )
    ).scalar_one_or_none()
    if identity is None:
        return False
    await contacts.record_consent(
        session,
        identity=identity,
        action=kind,
        consent=contacts.Consent(source="api", at=occurred_at),
        now=now,
    )
    return True


async def record_click(session: AsyncSession, *, click: Click, now: datetime) -> str | None:
    """Note the click on the delivery and as an interaction; returns the Page's username (None
    when the Page is gone)."""
    page = (
        await session.execute(sa.select(Page).where(col(Page.page_id) == click.page_id))
    ).scalar_one_or_none()
    if page is None or page.workspace_id != click.workspace_id:
        return None
    if click.delivery_id:
        deliveries = table_of(Delivery)
        await session.execute(
            sa.update(deliveries)
            .where(
                deliveries.c.id == click.delivery_id,
                deliveries.c.workspace_id == click.workspace_id,
                deliveries.c.clicked_at.is_(None),
            )
            .values(clicked_at=now)
        )
    session.add(
        InteractionEvent(
            id=new_id("ev"),
            workspace_id=click.workspace_id,
            contact_id=click.contact_id,
            page_id=click.page_id,
            type="email_click",
            delivery_id=click.delivery_id,
            data={"intent": click.intent.value},
            occurred_at=now,
            created_at=now,
        )
    )
    await session.flush()
    return page.username
