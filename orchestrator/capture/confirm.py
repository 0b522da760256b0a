"""The double opt-in confirmation behind `/c/<token>` (DESIGN sections 9 and 10).

GET shows a button and changes nothing (mail scanners follow links); POST confirms. Confirming
writes the capture's consent (`subscribe`, dated when the form was sent, with its source, form,
consent version, IP and user agent) and the proof (`confirm`, source `double_opt_in`, with the
click's IP and user agent), applies the form's tags, fires its `captured` trigger and reserves
the wheel's prize. The capture's `subscribe` row is unique per contact, source and time, so a
second press (or two at once) confirms nothing twice: the first press claims the capture.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator import contacts
from orchestrator.campaigns import runs, triggers
from orchestrator.capture import counters, spins
from orchestrator.capture.capture import CAPTURE_EVENT, messenger_url
from orchestrator.capture.spins import SpinView
from orchestrator.capture.tokens import read_confirm_token, token_hash
from orchestrator.crypto import KeyRing
from orchestrator.db import insert_ignoring_conflicts
from orchestrator.links import LinkExpired, LinkInvalid
from orchestrator.models import (
    CaptureForm,
    CaptureTokenUse,
    EmailIdentity,
    InteractionEvent,
    Workspace,
    table_of,
)

# The person said stop after this email was sent; an old confirmation link must not undo it.
_REFUSED = frozenset({"unsubscribed", "complained"})


@dataclass(frozen=True)
class Pending:
    identity: EmailIdentity
    event: InteractionEvent
    form: CaptureForm | None
    sender_name: str | None


@dataclass(frozen=True)
class Confirmed:
    address_hint: str
    sender_name: str | None
    messenger_url: str | None
    spin: SpinView | None
    first: bool


def mask(address: str) -> str:
    """`lan.nguyen@example.com` -> `l***@example.com`: enough to recognise, not to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


async def pending(session: AsyncSession, keyring: KeyRing, *, token: str, now: datetime) -> Pending:
    """The capture a confirm token names; raises `LinkInvalid` or `LinkExpired`."""
    link = read_confirm_token(keyring, token, now=now)
    identity = await session.get(EmailIdentity, link.email_identity_id)
    event = await session.get(InteractionEvent, link.capture_event_id)
    if (
        identity is None
        or identity.workspace_id != link.workspace_id
        or event is None
        or event.type != CAPTURE_EVENT
        or event.workspace_id != link.workspace_id
        or event.contact_id != identity.contact_id
    ):
        raise LinkInvalid("the address or the capture is gone")
    if identity.status in _REFUSED:
        raise LinkExpired("the address was unsubscribed since")
    form_id = (event.data or {}).get("form_id")
    form = await session.get(CaptureForm, form_id) if isinstance(form_id, str) else None
    workspace = await session.get(Workspace, link.workspace_id)
    sender = workspace.from_name or workspace.name if workspace is not None else None
    return Pending(identity, event, form, sender)


async def _claim(
    session: AsyncSession, event: InteractionEvent, form_id: object, now: datetime
) -> bool:
    """True for the one request that confirms this capture. A row in the used-token table
    (keyed by the capture, not the link: each confirmation email has its own link) decides it
    atomically on both databases, even for two presses at once."""
    table = table_of(CaptureTokenUse)
    claimed = await session.execute(
        insert_ignoring_conflicts(session, table, ["token_hash"])
        .values(
            token_hash=token_hash(f"confirmed:{event.id}"),
            workspace_id=event.workspace_id,
            form_id=str(form_id or ""),
            used_at=now,
        )
        .returning(table.c.token_hash)
    )
    return claimed.first() is not None


async def confirm(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    token: str,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
) -> Confirmed:
    found = await pending(session, keyring, token=token, now=now)
    identity, event, form = found.identity, found.event, found.form
    data = event.data or {}
    form_id = data.get("form_id")
    version = data.get("consent_version")
    first = await _claim(session, event, form_id, now)
    await contacts.record_consent(
        session,
        identity=identity,
        action="subscribe",
        consent=contacts.Consent(
            source=str(data.get("kind", "embedded")),
            at=event.occurred_at,
            form_id=form_id,
            text_version=version,
            ip=data.get("ip"),
            user_agent=data.get("user_agent"),
        ),
        now=now,
    )
    spin: SpinView | None = None
    if first:
        await contacts.record_consent(
            session,
            identity=identity,
            action="confirm",
            consent=contacts.Consent(
                source="double_opt_in",
                at=now,
                form_id=form_id,
                text_version=version,
                ip=ip,
                user_agent=user_agent,
            ),
            now=now,
        )
    if first and form is not None:
        contact_id = identity.contact_id
        added = await contacts.add_tags(
            session, workspace_id=form.workspace_id, contact_id=contact_id, tags=form.tags, now=now
        )
        if added:
            await contacts.touch(session, contact_id=contact_id, now=now)
            await triggers.fire_tags_added(
                session, workspace_id=form.workspace_id, contact_id=contact_id, tags=added, now=now
            )
        await runs.fire_trigger(
            session,
            workspace_id=form.workspace_id,
            on="captured",
            key=form.id,
            contact_id=contact_id,
            event_id=f"capture:{event.id}",
            now=now,
        )
        await counters.bump(
            session, workspace_id=form.workspace_id, form_id=form.id, outcome=counters.CONFIRMED
        )
    if form is not None and form.kind == "minigame":
        spin_id = await spins.spin_of_contact(
            session, form_id=form.id, contact_id=identity.contact_id
        )
        if spin_id is not None:
            spin = await spins.reserve(session, spin_id=spin_id, now=now)
    return Confirmed(
        address_hint=mask(identity.address),
        sender_name=found.sender_name,
        # The click proves the inbox: this ref may bind the person's Messenger to the contact.
        messenger_url=await messenger_url(
            session, keyring, form=form, contact_id=identity.contact_id, now=now
        )
        if form is not None and form.deleted_at is None
        else None,
        spin=spin,
        first=first,
    )
