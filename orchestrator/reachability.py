"""What the policy would decide for a contact now, and the facts it decides on (DESIGN section 7).

The shell half of the policy: read the contact's rows, copy the facts into the policy's plain
inputs, call `decide` with `now`. Reachability, preview and the dispatcher share these builders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orchestrator.contacts import ContactNotFound
from orchestrator.models import (
    Contact,
    EmailIdentity,
    MessengerIdentity,
    OptinToken,
    Page,
    Workspace,
)
from orchestrator.policy import (
    EmailState,
    EmailStatus,
    MessageSpec,
    MessengerState,
    OptInTokenState,
    PageState,
    Purpose,
    SendContext,
    TokenKind,
    decide,
    human_agent_until,
    window_closes_at,
    window_open,
)


def takeover_until(identity: MessengerIdentity, quiet: timedelta) -> datetime | None:
    """A takeover lasts until handed back (a later release) or `quiet` after the person on the
    Page last wrote (DESIGN section 6)."""
    if identity.takeover_at is None:
        return None
    if (
        identity.takeover_released_at is not None
        and identity.takeover_released_at >= identity.takeover_at
    ):
        return None
    return identity.takeover_at + quiet


def token_state(token: OptinToken) -> OptInTokenState:
    return OptInTokenState(
        id=token.id,
        kind=TokenKind(token.kind),
        topic=token.topic or "",
        # A token without an expiry (recurring ones may omit it) is treated as expiring far away.
        expires_at=token.expires_at or datetime.max.replace(tzinfo=token.created_at.tzinfo),
        used=token.used_at is not None,
        stopped=token.status != "active",
    )


def messenger_state(
    identity: MessengerIdentity, tokens: list[OptinToken], *, quiet: timedelta
) -> MessengerState:
    return MessengerState(
        last_window_event_at=identity.window_opened_at,
        last_user_message_at=identity.last_user_message_at,
        stopped=identity.stopped_at is not None,
        takeover_until=takeover_until(identity, quiet),
        unavailable_until=identity.unavailable_until,
        tokens=tuple(token_state(t) for t in tokens),
    )


def page_state(page: Page) -> PageState:
    return PageState(
        profile=page.policy_profile,
        human_agent_enabled=page.human_agent_enabled,
        otn_enabled=page.otn_enabled,
        paused=page.paused_at is not None,
    )


def email_state(identity: EmailIdentity | None, workspace: Workspace) -> EmailState:
    return EmailState(
        status=EmailStatus(identity.status) if identity is not None else None,
        transactional_to_unconfirmed=workspace.transactional_to_unconfirmed,
    )


@dataclass(frozen=True)
class ContactFacts:
    contact: Contact
    workspace: Workspace
    email: EmailIdentity | None
    identities: list[MessengerIdentity]
    tokens: dict[str, list[OptinToken]]
    pages: dict[str, Page]


async def load_facts(
    session: AsyncSession, *, workspace_id: str, contact_id: str, page_id: str | None = None
) -> ContactFacts:
    """The contact's rows; `pages` holds only `page_id` when given (a send concerns one Page),
    every Page of the workspace otherwise (reachability picks one)."""
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.workspace_id != workspace_id or contact.merged_into:
        raise ContactNotFound(f"No contact {contact_id!r}")
    workspace = await session.get(Workspace, workspace_id)
    assert workspace is not None
    email = (
        await session.execute(
            sa.select(EmailIdentity)
            .where(col(EmailIdentity.contact_id) == contact_id)
            .order_by(col(EmailIdentity.created_at), col(EmailIdentity.id))
            .limit(1)
        )
    ).scalar_one_or_none()
    identities = list(
        (
            await session.execute(
                sa.select(MessengerIdentity)
                .where(col(MessengerIdentity.contact_id) == contact_id)
                .order_by(col(MessengerIdentity.created_at))
            )
        ).scalars()
    )
    tokens: dict[str, list[OptinToken]] = {i.id: [] for i in identities}
    if identities:
        for token in (
            await session.execute(
                sa.select(OptinToken).where(col(OptinToken.messenger_identity_id).in_(list(tokens)))
            )
        ).scalars():
            tokens[token.messenger_identity_id].append(token)
    page_query = sa.select(Page).where(col(Page.workspace_id) == workspace_id)
    if page_id is not None:
        page_query = page_query.where(col(Page.page_id) == page_id)
    page_rows = (await session.execute(page_query)).scalars()
    return ContactFacts(
        contact=contact,
        workspace=workspace,
        email=email,
        identities=identities,
        tokens=tokens,
        pages={p.page_id: p for p in page_rows},
    )


async def load_facts_many(
    session: AsyncSession, keys: Sequence[tuple[str, str, str | None]]
) -> dict[tuple[str, str | None], ContactFacts]:
    """`load_facts` for a batch of (workspace, contact, page) keys in a handful of `IN` queries
    (the dispatcher's batch). Contacts that are gone or merged are left out: the caller falls
    back to `load_facts`, which says so."""
    contact_ids = {contact_id for _, contact_id, _ in keys}
    if not contact_ids:
        return {}
    contacts = {
        c.id: c
        for c in (await session.execute(sa.select(Contact).where(col(Contact.id).in_(contact_ids))))
        .scalars()
        .all()
        if not c.merged_into
    }
    workspace_ids = {ws for ws, _, _ in keys}
    workspaces = {
        w.id: w
        for w in (
            await session.execute(sa.select(Workspace).where(col(Workspace.id).in_(workspace_ids)))
        ).scalars()
    }
    emails: dict[str, EmailIdentity] = {}
    for address in (
        await session.execute(
            sa.select(EmailIdentity)
            .where(col(EmailIdentity.contact_id).in_(contact_ids))
            .order_by(col(EmailIdentity.created_at), col(EmailIdentity.id))
        )
    ).scalars():
        emails.setdefault(address.contact_id, address)
    identities: dict[str, list[MessengerIdentity]] = {}
    for identity in (
        await session.execute(
            sa.select(MessengerIdentity)
            .where(col(MessengerIdentity.contact_id).in_(contact_ids))
            .order_by(col(MessengerIdentity.created_at))
        )
    ).scalars():
        identities.setdefault(identity.contact_id, []).append(identity)
    tokens: dict[str, list[OptinToken]] = {i.id: [] for found in identities.values() for i in found}
    if tokens:
        for token in (
            await session.execute(
                sa.select(OptinToken).where(col(OptinToken.messenger_identity_id).in_(list(tokens)))
            )
        ).scalars():
            tokens[token.messenger_identity_id].append(token)
    page_ids = {page_id for _, _, page_id in keys if page_id}
    pages = {
        p.page_id: p
        for p in (
            await session.execute(sa.select(Page).where(col(Page.page_id).in_(page_ids)))
        ).scalars()
    }
    found: dict[tuple[str, str | None], ContactFacts] = {}
    for workspace_id, contact_id, page_id in keys:
        contact = contacts.get(contact_id)
        if contact is None or contact.workspace_id != workspace_id:
            continue
        own = identities.get(contact_id, [])
        page = pages.get(page_id or "")
        found[(contact_id, page_id)] = ContactFacts(
            contact=contact,
            workspace=workspaces[workspace_id],
            email=emails.get(contact_id),
            identities=own,
            tokens={i.id: tokens[i.id] for i in own},
            pages={page.page_id: page}
            if page is not None and page.workspace_id == workspace_id
            else {},
        )
    return found


def send_context(
    facts: ContactFacts,
    *,
    page_id: str | None,
    message: MessageSpec,
    now: datetime,
    quiet: timedelta,
) -> SendContext:
    """The policy's inputs for one message to this contact through `page_id`: one place for the
    dispatcher, the preview and reachability, so what they show is what is sent."""
    page = facts.pages.get(page_id) if page_id else None
    identity = next((i for i in facts.identities if i.page_id == page_id), None)
    return SendContext(
        now=now,
        page=page_state(page) if page is not None else PageState(),
        message=message,
        email=email_state(facts.email, facts.workspace),
        messenger=messenger_state(identity, facts.tokens[identity.id], quiet=quiet)
        if identity is not None and page is not None
        else None,
    )


def decision_for(
    facts: ContactFacts,
    *,
    page_id: str | None,
    purpose: Purpose,
    now: datetime,
    quiet: timedelta,
    topic: str | None = None,
) -> dict[str, Any]:
    ctx = send_context(
        facts,
        page_id=page_id,
        message=MessageSpec(purpose=purpose, topic=topic),
        now=now,
        quiet=quiet,
    )
    decision = decide(ctx).as_dict()
    decision["page_id"] = page_id
    return decision


def reachability(
    facts: ContactFacts, *, now: datetime, quiet: timedelta, page_id: str | None = None
) -> dict[str, Any]:
    """The shape of DESIGN section 7. Decisions are for `page_id`, or else the Page of the most
    recently opened window, or else the contact's first Page, or else the workspace's first."""
    messenger = []
    for identity in facts.identities:
        messenger.append(
            {
                "page_id": identity.page_id,
                "psid": identity.psid,
                "window_open": window_open(identity.window_opened_at, now),
                "window_closes_at": window_closes_at(identity.window_opened_at),
                "human_agent_until": human_agent_until(identity.last_user_message_at),
                "taken_over_until": takeover_until(identity, quiet),
                "stopped": identity.stopped_at is not None,
                "tokens": [
                    {"topic": t.topic, "kind": t.kind, "expires_at": t.expires_at}
                    for t in facts.tokens[identity.id]
                    if t.status == "active"
                    and t.used_at is None
                    and (t.expires_at is None or t.expires_at > now)
                ],
            }
        )
    if page_id is None:
        opened = [i for i in facts.identities if i.window_opened_at is not None]
        if opened:
            page_id = max(opened, key=lambda i: i.window_opened_at or now).page_id
        elif facts.identities:
            page_id = facts.identities[0].page_id
        elif facts.pages:
            page_id = next(iter(facts.pages))
    return {
        "email": {"address": facts.email.address, "status": facts.email.status}
        if facts.email
        else None,
        "messenger": messenger,
        "decisions": {
            purpose.value: decision_for(
                facts, page_id=page_id, purpose=purpose, now=now, quiet=quiet
            )
            for purpose in (Purpose.PROMOTIONAL, Purpose.TRANSACTIONAL)
        },
    }
