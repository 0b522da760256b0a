"""A capture: an address a person typed into a form, already past the guards (origin, rate
limits, size, honeypot, token age) and validated. DESIGN section 10.

* The address becomes a contact (never a second one: the address is unique per workspace).
* Single opt-in: the ledger gets `subscribe` (source = the form's kind, form, consent version,
  IP, user agent) at once, the form's tags apply and its `captured` trigger fires.
* Double opt-in (the default): nothing about consent is claimed yet. The capture is kept as an
  interaction event (its evidence) and a `double_opt_in` delivery sends the confirmation; the
  ledger rows, tags and trigger wait for the confirmation (`confirm.py`), so a bot typing
  someone else's address can neither subscribe, tag nor message them. At most one confirmation
  per address per cooling period.
* The answer is the same for known and unknown addresses.

`capture` does it all in the request's transaction (the lucky wheel, whose answer depends on
what the address drew before); popup and embedded forms answer at once and leave the rest to
`apply` through the capture inbox (`inbox.py`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orchestrator import contacts, deliveries, links
from orchestrator.campaigns import runs, triggers
from orchestrator.capture import counters, spins
from orchestrator.capture.guard import CaptureSettings
from orchestrator.capture.spins import SpinView
from orchestrator.capture.tokens import token_hash
from orchestrator.crypto import KeyRing
from orchestrator.db import insert_ignoring_conflicts, rows_affected
from orchestrator.errors import Conflict
from orchestrator.ids import new_id
from orchestrator.models import (
    CaptureForm,
    CaptureTokenUse,
    Delivery,
    EmailIdentity,
    InteractionEvent,
    Page,
    table_of,
)

DOUBLE_OPT_IN = "double_opt_in"
CAPTURE_EVENT = "capture"


class TokenReplayed(Conflict):
    slug = "form-token-replayed"
    title = "This form token was already used"


@dataclass(frozen=True)
class Submission:
    address: str  # normalised
    consent_version: str  # the one the form token carried: the text the person saw
    name: str | None = None
    locale: str | None = None
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class Applied:
    outcome: str  # counters.CAPTURED or counters.DUPLICATE
    contact_id: str
    created: bool


@dataclass(frozen=True)
class CaptureAnswer:
    status: Literal["pending_confirmation", "subscribed"]
    double_opt_in: bool
    messenger_url: str | None
    spin: SpinView | None


async def use_token(session: AsyncSession, form: CaptureForm, token: str, now: datetime) -> None:
    """Raises `TokenReplayed` when the token was used before."""
    table = table_of(CaptureTokenUse)
    used = await session.execute(
        insert_ignoring_conflicts(session, table, ["token_hash"])
        .values(
            token_hash=token_hash(token),
            workspace_id=form.workspace_id,
            form_id=form.id,
            used_at=now,
        )
        .returning(table.c.token_hash)
    )
    if used.first() is None:
        raise TokenReplayed("Fetch a new form token and submit again")


async def _identity(session: AsyncSession, workspace_id: str, address: str) -> EmailIdentity | None:
    return (
        await session.execute(
            sa.select(EmailIdentity).where(
                col(EmailIdentity.workspace_id) == workspace_id,
                col(EmailIdentity.address) == address,
            )
        )
    ).scalar_one_or_none()


async def _contact_for(
    session: AsyncSession,
    keyring: KeyRing,
    form: CaptureForm,
    submission: Submission,
    consent: contacts.Consent | None,
    now: datetime,
    new_contact_id: str | None,
) -> tuple[EmailIdentity, bool]:
    """The address's identity, created (with its contact) when new; True when created now.

    Only a new contact takes the name and locale typed into the form: a public form never
    rewrites what is known about an existing contact."""
    existing = await _identity(session, form.workspace_id, submission.address)
    if existing is not None:
        return existing, False
    try:
        async with session.begin_nested():
            _, outcome = await contacts.save_contact(
                session,
                keyring,
                workspace_id=form.workspace_id,
                data=contacts.ContactData(
                    email=submission.address,
                    name=submission.name,
                    locale=submission.locale,
                    tags=form.tags if consent is not None else (),
                    consent=consent,
                    source=form.kind,
                ),
                now=now,
                on_tags_added=triggers.on_tags_added(
                    session, workspace_id=form.workspace_id, now=now
                ),
                new_contact_id=new_contact_id,
            )
        created = outcome == "created"
    except IntegrityError:
        created = False  # a concurrent capture of the same address committed it first
    identity = await _identity(session, form.workspace_id, submission.address)
    assert identity is not None
    return identity, created


async def _recent_captures(
    session: AsyncSession, contact_id: str, form_id: str | None, since: datetime
) -> list[InteractionEvent]:
    found = (
        await session.execute(
            sa.select(InteractionEvent).where(
                col(InteractionEvent.contact_id) == contact_id,
                col(InteractionEvent.type) == CAPTURE_EVENT,
                col(InteractionEvent.occurred_at) >= since,
            )
        )
    ).scalars()
    return [e for e in found if form_id is None or (e.data or {}).get("form_id") == form_id]


async def _recent_confirmation(session: AsyncSession, contact_id: str, since: datetime) -> bool:
    table = table_of(Delivery)
    found = await session.execute(
        sa.select(table.c.id)
        .where(
            table.c.contact_id == contact_id,
            table.c.kind == DOUBLE_OPT_IN,
            table.c.created_at >= since,
        )
        .limit(1)
    )
    return found.first() is not None


def _event(
    form: CaptureForm, contact_id: str, submission: Submission, now: datetime
) -> InteractionEvent:
    data: dict[str, Any] = {
        "form_id": form.id,
        "kind": form.kind,
        "consent_version": submission.consent_version,
        "double_opt_in": form.double_opt_in,
        "ip": submission.ip,
        "user_agent": submission.user_agent,
    }
    return InteractionEvent(
        id=new_id("ev"),
        workspace_id=form.workspace_id,
        contact_id=contact_id,
        type=CAPTURE_EVENT,
        data=data,
        occurred_at=now,
        created_at=now,
    )


async def page_username(session: AsyncSession, form: CaptureForm) -> str | None:
    """The username of the form's Page, for its m.me links; None without a Page."""
    if form.page_id is None:
        return None
    found = await session.execute(
        sa.select(col(Page.username)).where(
            col(Page.page_id) == form.page_id, col(Page.workspace_id) == form.workspace_id
        )
    )
    return found.scalar_one_or_none()


def messenger_link(
    keyring: KeyRing,
    *,
    workspace_id: str,
    username: str | None,
    contact_id: str | None,
    now: datetime,
) -> str | None:
    """The "Continue on Messenger" link: m.me with a signed ref naming the contact.

    `contact_id` None: the request does not prove who is asking (a known address typed into a
    public form). The ref then names an id that exists nowhere: it looks like any other, and when
    it comes back the reopen loop treats the person as arriving without a ref and asks for their
    email with a `user_email` quick reply, which Meta verifies (DESIGN section 6). So nobody can
    attach their Messenger account to another person's contact by typing that person's address.
    """
    if username is None:
        return None
    ref = links.make_ref(
        keyring,
        links.Ref(contact_id=contact_id or new_id("ct"), intent=links.Intent.INVITE),
        workspace_id=workspace_id,
        now=now,
    )
    return links.mme_url(username, ref)


async def messenger_url(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    form: CaptureForm,
    contact_id: str | None,
    now: datetime,
) -> str | None:
    """`messenger_link` for the form's Page, looked up."""
    return messenger_link(
        keyring,
        workspace_id=form.workspace_id,
        username=await page_username(session, form),
        contact_id=contact_id,
        now=now,
    )


async def capture(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    form: CaptureForm,
    token: str,
    submission: Submission,
    settings: CaptureSettings,
    now: datetime,
    r: float | None = None,
) -> CaptureAnswer:
    """Everything now. Raises `TokenReplayed` (before writing anything else) when the token was
    used."""
    await use_token(session, form, token, now)
    applied = await apply(
        session, keyring, form=form, submission=submission, settings=settings, now=now
    )
    single = not form.double_opt_in
    contact_id = applied.contact_id
    spin: SpinView | None = None
    if form.kind == "minigame":
        spin, drawn_now = await spins.spin(
            session,
            keyring,
            workspace_id=form.workspace_id,
            form_id=form.id,
            address=submission.address,
            contact_id=contact_id,
            r=secrets.SystemRandom().random() if r is None else r,
            now=now,
        )
        if single and drawn_now:
            spin = await spins.reserve(session, spin_id=spin.id, now=now)
        # A code is shown only to the request that won it; the answer for an address that
        # played before carries the same segment and no code.
        code = spin.code if single and drawn_now else None
        spin = SpinView(spin.id, spin.segment_id, spin.label, spin.status, code)
    await counters.bump(
        session, workspace_id=form.workspace_id, form_id=form.id, outcome=applied.outcome
    )
    return CaptureAnswer(
        status="subscribed" if single else "pending_confirmation",
        double_opt_in=form.double_opt_in,
        messenger_url=await messenger_url(
            session, keyring, form=form, contact_id=contact_id if applied.created else None, now=now
        ),
        spin=spin,
    )


async def apply(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    form: CaptureForm,
    submission: Submission,
    settings: CaptureSettings,
    now: datetime,
    new_contact_id: str | None = None,
) -> Applied:
    """The contact, and the ledger, tags and trigger (single opt-in) or the confirmation
    (double opt-in); no spin, no counter. `new_contact_id` is the id a new contact gets."""
    single = not form.double_opt_in
    consent = (
        contacts.Consent(
            source=form.kind,
            at=now,
            form_id=form.id,
            text_version=submission.consent_version,
            ip=submission.ip,
            user_agent=submission.user_agent,
        )
        if single
        else None
    )
    identity, created = await _contact_for(
        session, keyring, form, submission, consent, now, new_contact_id
    )
    contact_id = identity.contact_id
    since = now - settings.cooling
    if consent is not None:
        outcome = await _subscribe_now(session, form, identity, submission, consent, created, since)
    elif await _recent_confirmation(session, contact_id, since):
        outcome = counters.DUPLICATE
    else:
        outcome = await _send_confirmation(
            session, form, identity, submission, settings=settings, now=now
        )
    return Applied(outcome=outcome, contact_id=contact_id, created=created)


async def _subscribe_now(
    session: AsyncSession,
    form: CaptureForm,
    identity: EmailIdentity,
    submission: Submission,
    consent: contacts.Consent,
    created: bool,
    since: datetime,
) -> str:
    """Single opt-in: the ledger, the tags and the trigger now (a new contact got the first two
    from `save_contact` already)."""
    contact_id, now = identity.contact_id, consent.at
    if not created and await _recent_captures(session, contact_id, form.id, since):
        return counters.DUPLICATE
    event = _event(form, contact_id, submission, now)
    session.add(event)
    if not created:
        await contacts.record_consent(
            session, identity=identity, action="subscribe", consent=consent, now=now
        )
        added = await contacts.add_tags(
            session, workspace_id=form.workspace_id, contact_id=contact_id, tags=form.tags, now=now
        )
        if added:
            await triggers.fire_tags_added(
                session, workspace_id=form.workspace_id, contact_id=contact_id, tags=added, now=now
            )
    await session.flush()
    await runs.fire_trigger(
        session,
        workspace_id=form.workspace_id,
        on="captured",
        key=form.id,
        contact_id=contact_id,
        event_id=f"capture:{event.id}",
        now=now,
    )
    return counters.CAPTURED


async def _send_confirmation(
    session: AsyncSession,
    form: CaptureForm,
    identity: EmailIdentity,
    submission: Submission,
    *,
    settings: CaptureSettings,
    now: datetime,
) -> str:
    event = _event(form, identity.contact_id, submission, now)
    session.add(event)
    await session.flush()
    # The key makes "one per cooling period" hold between concurrent captures too: two of them
    # in the same period collide on it, and the one that loses records a duplicate.
    period = int(now.timestamp() // settings.cooling.total_seconds())
    try:
        async with session.begin_nested():
            inserted = await deliveries.insert_one_off(
                session,
                workspace_id=form.workspace_id,
                contact_id=identity.contact_id,
                page_id=None,
                kind=DOUBLE_OPT_IN,
                purpose="transactional",
                topic=None,
                content={
                    "form_id": form.id,
                    "email_identity_id": identity.id,
                    "capture_event_id": event.id,
                    "consent_version": submission.consent_version,
                    "locale": submission.locale or form.locale,
                },
                now=now,
                idempotency_key=f"{DOUBLE_OPT_IN}:{identity.id}:{period}",
            )
    except IntegrityError:
        inserted = None
    if inserted is None:
        await session.delete(event)
        await session.flush()
        return counters.DUPLICATE
    return counters.CAPTURED


# Used form tokens only matter while a token could still be presented (its replay window);
# confirmation claims share the table and must outlive their 7-day links.
USED_TOKENS_KEPT = timedelta(days=30)


async def forget_used_tokens(session: AsyncSession, *, now: datetime) -> int:
    """Delete used-token rows past any token's life; for a periodic job (`capture.forget_tokens`)."""
    table = table_of(CaptureTokenUse)
    result = await session.execute(sa.delete(table).where(table.c.used_at < now - USED_TOKENS_KEPT))
    return rows_affected(result)
