"""Contacts and their identities, tags and consent (DESIGN section 4).

Services never commit; the caller owns the transaction. Every query is scoped by workspace.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orchestrator import suppression
from orchestrator.addresses import AddressInvalid, normalize_address
from orchestrator.audience import AudienceFilter, audience_condition
from orchestrator.consent import EmailStatus, next_status, stricter
from orchestrator.crypto import KeyRing
from orchestrator.db import insert_ignoring_conflicts, rows_affected
from orchestrator.errors import Conflict, FieldError, NotFound, ValidationFailed
from orchestrator.ids import new_id
from orchestrator.models import (
    ConsentRecord,
    Contact,
    ContactMerge,
    ContactTag,
    Delivery,
    EmailIdentity,
    InteractionEvent,
    MessengerIdentity,
    OptinToken,
    Page,
    table_of,
)

Outcome = Literal["created", "updated", "unchanged"]
# Told (contact id, the tags new to it) once a create or update is written. The API fires the
# `tag_added` campaign triggers through it, so this module knows nothing of campaigns. Imports
# write tags through their own batch path and fire nothing: starting a run per row of a
# 100,000-row import is a decision of its own, not a side effect.
TagsAdded = Callable[[str, Sequence[str]], Awaitable[None]]
# A consent time a little ahead of our clock is clock skew; further ahead it is an error.
_CONSENT_SKEW = timedelta(minutes=5)


class ContactNotFound(NotFound):
    slug = "contact-not-found"
    title = "Contact not found"


class ContactConflict(Conflict):
    slug = "contact-conflict"
    title = "The identifiers belong to different contacts"


class PageNotFound(NotFound):
    slug = "page-not-found"
    title = "Page not found"


@dataclass(frozen=True)
class MessengerRef:
    page_id: str
    psid: str


@dataclass(frozen=True)
class Consent:
    source: str
    at: datetime
    form_id: str | None = None
    text_version: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    topic: str | None = None


@dataclass(frozen=True)
class ContactData:
    """What a caller says about a contact; fields left as None are left alone."""

    email: str | None = None
    messenger: MessengerRef | None = None
    name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    tags: Sequence[str] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    consent: Consent | None = None
    source: str = "api"


@dataclass(frozen=True)
class ContactView:
    id: str
    name: str | None
    locale: str | None
    timezone: str | None
    attributes: dict[str, Any]
    tags: list[str]
    email: dict[str, str] | None
    messenger: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime


# -- reading ---------------------------------------------------------------------------------


async def _get(session: AsyncSession, workspace_id: str, contact_id: str) -> Contact:
    # populate_existing: a merge moves rows with Core statements and expires loaded objects.
    contact = await session.get(Contact, contact_id, populate_existing=True)
    if contact is None or contact.workspace_id != workspace_id:
        raise ContactNotFound(f"No contact {contact_id!r}")
    if contact.merged_into is not None:
        raise ContactNotFound(
            f"Contact {contact_id!r} was merged into {contact.merged_into!r}",
            extra={"merged_into": contact.merged_into},
        )
    return contact


async def _email_of(session: AsyncSession, contact_id: str) -> EmailIdentity | None:
    """The contact's primary address: the oldest one (a merge can bring a second)."""
    rows = await session.execute(
        sa.select(EmailIdentity)
        .where(col(EmailIdentity.contact_id) == contact_id)
        .order_by(col(EmailIdentity.created_at), col(EmailIdentity.id))
        .limit(1)
    )
    return rows.scalars().first()


async def view(session: AsyncSession, *, workspace_id: str, contact_id: str) -> ContactView:
    contact = await _get(session, workspace_id, contact_id)
    return (await _views(session, [contact]))[0]


async def _views(session: AsyncSession, contacts: Sequence[Contact]) -> list[ContactView]:
    ids = [c.id for c in contacts]
    if not ids:
        return []
    tags: dict[str, list[str]] = {i: [] for i in ids}
    for cid, tag in await session.execute(
        sa.select(col(ContactTag.contact_id), col(ContactTag.tag))
        .where(col(ContactTag.contact_id).in_(ids))
        .order_by(col(ContactTag.tag))
    ):
        tags[cid].append(tag)
    emails: dict[str, dict[str, str]] = {}
    for identity in (
        await session.execute(
            sa.select(EmailIdentity)
            .where(col(EmailIdentity.contact_id).in_(ids))
            .order_by(col(EmailIdentity.created_at).desc(), col(EmailIdentity.id).desc())
        )
    ).scalars():
        # Ordered newest first, so the oldest (primary) address is the one left standing.
        emails[identity.contact_id] = {"address": identity.address, "status": identity.status}
    messenger: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for psid_identity in (
        await session.execute(
            sa.select(MessengerIdentity)
            .where(col(MessengerIdentity.contact_id).in_(ids))
            .order_by(col(MessengerIdentity.created_at))
        )
    ).scalars():
        messenger[psid_identity.contact_id].append(
            {
                "page_id": psid_identity.page_id,
                "psid": psid_identity.psid,
                "window_opened_at": psid_identity.window_opened_at,
                "last_user_message_at": psid_identity.last_user_message_at,
            }
        )
    return [
        ContactView(
            id=c.id,
            name=c.name,
            locale=c.locale,
            timezone=c.timezone,
            attributes=dict(c.attributes or {}),
            tags=tags[c.id],
            email=emails.get(c.id),
            messenger=messenger[c.id],
            created_at=c.created_at,
            updated_at=c.updated_at,
        )
        for c in contacts
    ]


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            "The cursor is not one this API returned",
            errors=[FieldError("query.cursor", "invalid cursor")],
        ) from exc
    if not decoded.startswith("ct_"):
        raise ValidationFailed(
            "The cursor is not one this API returned",
            errors=[FieldError("query.cursor", "invalid cursor")],
        )
    return decoded


async def list_contacts(
    session: AsyncSession,
    *,
    workspace_id: str,
    audience: AudienceFilter,
    limit: int,
    cursor: str | None,
) -> tuple[list[ContactView], str | None]:
    contacts = table_of(Contact)
    query = (
        sa.select(contacts.c.id)
        .where(audience_condition(workspace_id, audience))
        .order_by(contacts.c.id)
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(contacts.c.id > decode_cursor(cursor))
    ids = list((await session.execute(query)).scalars())
    more = len(ids) > limit
    ids = ids[:limit]
    rows = (
        (
            await session.execute(
                sa.select(Contact).where(col(Contact.id).in_(ids)).order_by(col(Contact.id))
            )
        )
        .scalars()
        .all()
    )
    return await _views(session, rows), (encode_cursor(ids[-1]) if more and ids else None)


# -- writing ---------------------------------------------------------------------------------


def _check_consent(consent: Consent | None, now: datetime) -> None:
    if consent is not None and consent.at > now + _CONSENT_SKEW:
        raise ValidationFailed(
            "consent_at is in the future",
            errors=[FieldError("consent_at", "may not be in the future")],
        )


async def _page_of_workspace(session: AsyncSession, workspace_id: str, page_id: str) -> Page:
    page = (
        (await session.execute(sa.select(Page).where(col(Page.page_id) == page_id)))
        .scalars()
        .first()
    )
    if page is None or page.workspace_id != workspace_id:
        raise PageNotFound(
            f"No Page {page_id!r} in this workspace",
            errors=[FieldError("messenger.page_id", "unknown page")],
        )
    return page


async def _match(
    session: AsyncSession, workspace_id: str, address: str | None, ref: MessengerRef | None
) -> tuple[str | None, str | None]:
    by_email = by_psid = None
    if address is not None:
        by_email = (
            await session.execute(
                sa.select(col(EmailIdentity.contact_id)).where(
                    col(EmailIdentity.workspace_id) == workspace_id,
                    col(EmailIdentity.address) == address,
                )
            )
        ).scalar_one_or_none()
    if ref is not None:
        by_psid = (
            await session.execute(
                sa.select(col(MessengerIdentity.contact_id)).where(
                    col(MessengerIdentity.workspace_id) == workspace_id,
                    col(MessengerIdentity.page_id) == ref.page_id,
                    col(MessengerIdentity.psid) == ref.psid,
                )
            )
        ).scalar_one_or_none()
    return by_email, by_psid


async def upsert_contact(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    workspace_id: str,
    data: ContactData,
    now: datetime,
    on_tags_added: TagsAdded | None = None,
    new_contact_id: str | None = None,
) -> tuple[ContactView, Outcome]:
    """`save_contact`, then the contact as the API shows it."""
    contact_id, outcome = await save_contact(
        session,
        keyring,
        workspace_id=workspace_id,
        data=data,
        now=now,
        on_tags_added=on_tags_added,
        new_contact_id=new_contact_id,
    )
    return await view(session, workspace_id=workspace_id, contact_id=contact_id), outcome


async def save_contact(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    workspace_id: str,
    data: ContactData,
    now: datetime,
    on_tags_added: TagsAdded | None = None,
    new_contact_id: str | None = None,
) -> tuple[str, Outcome]:
    """Create a contact, or update the one its email or Messenger identity names; returns its
    id. Callers with no use for the contact's view (capture, inbound events) skip reading it.

    `new_contact_id` is the id a created contact gets, when the caller already handed it out
    (a capture's Messenger link names it before the contact exists).

    Identifiers that name two different contacts are a conflict naming both; nothing is merged
    implicitly (DESIGN section 4). `on_tags_added` hears of the tags the contact did not have.
    """
    _check_consent(data.consent, now)
    address = normalize_or_fail(data.email) if data.email is not None else None
    if data.messenger is not None:
        await _page_of_workspace(session, workspace_id, data.messenger.page_id)
    by_email, by_psid = await _match(session, workspace_id, address, data.messenger)
    if by_email and by_psid and by_email != by_psid:
        raise ContactConflict(
            f"The email belongs to contact {by_email} and the Messenger identity to {by_psid}",
            extra={"contact_ids": [by_email, by_psid]},
        )
    existing_id = by_email or by_psid
    if existing_id is None:
        contact = Contact(
            id=new_contact_id or new_id("ct"),
            workspace_id=workspace_id,
            name=data.name,
            locale=data.locale,
            timezone=data.timezone,
            attributes=_merged({}, data.attributes),
            created_at=now,
            updated_at=now,
        )
        session.add(contact)
        await session.flush()
        changed = True
        outcome: Outcome = "created"
    else:
        contact = await _get(session, workspace_id, existing_id)
        changed = _apply_fields(contact, data)
        outcome = "updated"
    if address is not None:
        changed |= await _attach_email(
            session,
            keyring,
            contact=contact,
            address=address,
            consent=data.consent,
            source=data.source,
            now=now,
        )
    if data.messenger is not None and by_psid is None:
        session.add(
            MessengerIdentity(
                id=new_id("mi"),
                workspace_id=workspace_id,
                contact_id=contact.id,
                page_id=data.messenger.page_id,
                psid=data.messenger.psid,
                created_at=now,
                updated_at=now,
            )
        )
        changed = True
    added = await add_tags(
        session, workspace_id=workspace_id, contact_id=contact.id, tags=data.tags, now=now
    )
    changed |= bool(added)
    if changed and outcome == "updated":
        contact.updated_at = now
    await session.flush()
    if added and on_tags_added is not None:
        await on_tags_added(contact.id, added)
    return contact.id, outcome if changed or outcome == "created" else "unchanged"


def normalize_or_fail(value: str, field_name: str = "email") -> str:
    try:
        return normalize_address(value)
    except AddressInvalid as exc:
        raise ValidationFailed(
            f"{field_name}: {exc}", errors=[FieldError(field_name, str(exc), "invalid_email")]
        ) from exc


def _merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _apply_fields(contact: Contact, data: ContactData) -> bool:
    changed = False
    for name in ("name", "locale", "timezone"):
        value = getattr(data, name)
        if value is not None and getattr(contact, name) != value:
            setattr(contact, name, value)
            changed = True
    if data.attributes:
        merged = _merged(contact.attributes or {}, data.attributes)
        if merged != contact.attributes:
            contact.attributes = merged
            changed = True
    return changed


async def _attach_email(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    contact: Contact,
    address: str,
    consent: Consent | None,
    source: str,
    now: datetime,
) -> bool:
    identity = (
        await session.execute(
            sa.select(EmailIdentity).where(
                col(EmailIdentity.contact_id) == contact.id, col(EmailIdentity.address) == address
            )
        )
    ).scalar_one_or_none()
    changed = False
    if identity is None and await _email_of(session, contact.id) is not None:
        raise ContactConflict(
            f"Contact {contact.id} already has another email address",
            errors=[FieldError("email", "the contact has another address; PATCH it to change")],
            extra={"contact_ids": [contact.id]},
        )
    if identity is None:
        identity = EmailIdentity(
            id=new_id("em"),
            workspace_id=contact.workspace_id,
            contact_id=contact.id,
            address=address,
            status="unconfirmed",
            status_changed_at=now,
            created_at=now,
        )
        session.add(identity)
        await session.flush()
        changed = True
        if await suppression.is_suppressed(
            session, keyring, workspace_id=contact.workspace_id, address=address
        ):
            # A suppressed address enters unsubscribed, and the ledger says so (the status is
            # always its projection); a later consent claim cannot lift it (consent.LOCKED).
            await record_consent(
                session,
                identity=identity,
                action="unsubscribe",
                consent=Consent(source=source, at=now),
                now=now,
            )
    if consent is not None:
        changed |= await record_consent(
            session, identity=identity, action="subscribe", consent=consent, now=now
        )
    return changed


async def record_consent(
    session: AsyncSession,
    *,
    identity: EmailIdentity,
    action: Literal["subscribe", "confirm", "unsubscribe", "bounce", "complaint", "resubscribe"],
    consent: Consent,
    now: datetime,
) -> bool:
    """Append to the ledger (deduplicated) and move the status column in the same transaction.

    Returns whether anything changed; a replayed record changes nothing.
    """
    ledger = table_of(ConsentRecord)
    inserted = await session.execute(
        insert_ignoring_conflicts(
            session, ledger, ["contact_id", "action", "source", "occurred_at"]
        )
        .values(
            id=new_id("cl"),
            workspace_id=identity.workspace_id,
            contact_id=identity.contact_id,
            channel="email",
            topic=consent.topic,
            action=action,
            source=consent.source,
            form_id=consent.form_id,
            consent_text_version=consent.text_version,
            address=identity.address,
            ip=consent.ip,
            user_agent=consent.user_agent,
            occurred_at=consent.at,
            created_at=now,
        )
        # RETURNING tells a replay apart on both drivers (a rowcount may be -1 on psycopg).
        .returning(ledger.c.id)
    )
    if inserted.first() is None:
        return False
    await _reproject(session, identity, now)
    return True


async def _reproject(session: AsyncSession, identity: EmailIdentity, now: datetime) -> None:
    """Set the status column to the ledger's projection for this address, replayed in time order
    (records may arrive late, e.g. an import of older consents)."""
    ledger = table_of(ConsentRecord)
    rows = await session.execute(
        sa.select(ledger.c.action)
        .where(
            ledger.c.workspace_id == identity.workspace_id,
            ledger.c.address == identity.address,
            ledger.c.channel == "email",
        )
        .order_by(ledger.c.occurred_at, ledger.c.created_at)
    )
    status: EmailStatus = "unconfirmed"
    for (action,) in rows:
        status = next_status(status, action)
    if status != identity.status:
        identity.status = status
        identity.status_changed_at = now


async def add_tags(
    session: AsyncSession, *, workspace_id: str, contact_id: str, tags: Sequence[str], now: datetime
) -> list[str]:
    """Add tags; returns those the contact did not have yet (empty when nothing changed)."""
    wanted = sorted(set(tags))
    if not wanted:
        return []
    table = table_of(ContactTag)
    # RETURNING says which rows were new: executemany rowcount is -1 on psycopg.
    result = await session.execute(
        insert_ignoring_conflicts(session, table, ["contact_id", "tag"]).returning(table.c.tag),
        [
            {"contact_id": contact_id, "tag": tag, "workspace_id": workspace_id, "created_at": now}
            for tag in wanted
        ],
    )
    return sorted(row.tag for row in result.all())


async def touch(session: AsyncSession, *, contact_id: str, now: datetime) -> None:
    table = table_of(Contact)
    await session.execute(sa.update(table).where(table.c.id == contact_id).values(updated_at=now))


async def remove_tag(
    session: AsyncSession, *, workspace_id: str, contact_id: str, tag: str, now: datetime
) -> bool:
    contact = await _get(session, workspace_id, contact_id)
    table = table_of(ContactTag)
    result = await session.execute(
        sa.delete(table).where(table.c.contact_id == contact_id, table.c.tag == tag)
    )
    removed = bool(rows_affected(result))
    if removed:
        contact.updated_at = now
    return removed


async def update_contact(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    workspace_id: str,
    contact_id: str,
    changes: dict[str, Any],
    now: datetime,
    on_tags_added: TagsAdded | None = None,
) -> ContactView:
    """PATCH semantics: given fields replace (tags replace the set; attributes merge, null
    removes a key; a new email replaces the address and starts unconfirmed). `on_tags_added`
    hears of the tags the contact did not have."""
    contact = await _get(session, workspace_id, contact_id)
    for name in ("name", "locale", "timezone"):
        if name in changes:
            setattr(contact, name, changes[name])
    if "attributes" in changes:
        contact.attributes = _merged(contact.attributes or {}, changes["attributes"] or {})
    added: list[str] = []
    if "tags" in changes:
        table = table_of(ContactTag)
        keep = set(changes["tags"] or [])
        await session.execute(
            sa.delete(table).where(table.c.contact_id == contact_id, table.c.tag.not_in(keep))
        )
        added = await add_tags(
            session, workspace_id=workspace_id, contact_id=contact_id, tags=list(keep), now=now
        )
    if "email" in changes:
        await _replace_email(session, keyring, contact=contact, value=changes["email"], now=now)
    consent: Consent | None = changes.get("consent")
    if consent is not None:
        _check_consent(consent, now)
        identity = await _email_of(session, contact_id)
        if identity is None:
            raise ValidationFailed(
                "consent needs an email address",
                errors=[FieldError("consent_source", "the contact has no email address")],
            )
        await record_consent(
            session, identity=identity, action="subscribe", consent=consent, now=now
        )
    contact.updated_at = now
    await session.flush()
    if added and on_tags_added is not None:
        await on_tags_added(contact_id, added)
    return await view(session, workspace_id=workspace_id, contact_id=contact_id)


async def _replace_email(
    session: AsyncSession, keyring: KeyRing, *, contact: Contact, value: str | None, now: datetime
) -> None:
    current = await _email_of(session, contact.id)
    if value is None:
        if current is not None:
            await session.delete(current)
            await session.flush()
        return
    address = normalize_or_fail(value)
    if current is not None and current.address == address:
        return
    owner, _ = await _match(session, contact.workspace_id, address, None)
    if owner is not None and owner != contact.id:
        raise ContactConflict(
            f"The address belongs to contact {owner}",
            errors=[FieldError("email", "address used by another contact")],
            extra={"contact_ids": [contact.id, owner]},
        )
    if current is not None:
        await session.delete(current)
        await session.flush()
    await _attach_email(
        session, keyring, contact=contact, address=address, consent=None, source="api", now=now
    )


# -- erasure ---------------------------------------------------------------------------------


async def erase_contact(
    session: AsyncSession, keyring: KeyRing, *, workspace_id: str, contact_id: str, now: datetime
) -> None:
    """Remove personal data and identities, redact the ledger, keep the address's keyed hash
    in the suppression list so a later import cannot subscribe the person again."""
    contact = await _get(session, workspace_id, contact_id)
    identity = await _email_of(session, contact_id)
    if identity is not None:
        await suppression.suppress(
            session,
            keyring,
            workspace_id=workspace_id,
            address=identity.address,
            reason="erased",
            now=now,
        )
    ledger = table_of(ConsentRecord)
    await session.execute(
        sa.update(ledger)
        .where(ledger.c.contact_id == contact_id)
        .values(address=None, ip=None, user_agent=None, redacted=True)
    )
    events = table_of(InteractionEvent)
    await session.execute(
        sa.update(events).where(events.c.contact_id == contact_id).values(data={}, psid=None)
    )
    deliveries = table_of(Delivery)
    await session.execute(
        sa.update(deliveries)
        .where(deliveries.c.contact_id == contact_id)
        .values(content={}, last_error=None)
    )
    identities = table_of(MessengerIdentity)
    identity_ids = sa.select(identities.c.id).where(identities.c.contact_id == contact_id)
    tokens = table_of(OptinToken)
    await session.execute(sa.delete(tokens).where(tokens.c.messenger_identity_id.in_(identity_ids)))
    for model in (EmailIdentity, MessengerIdentity, ContactTag):
        table = table_of(model)
        await session.execute(sa.delete(table).where(table.c.contact_id == contact_id))
    await session.delete(contact)
    await session.flush()


# -- merging ---------------------------------------------------------------------------------


async def merge_contacts(
    session: AsyncSession, *, workspace_id: str, contact_id: str, other_id: str, now: datetime
) -> tuple[ContactView, str]:
    """Merge two contacts: keep the older id, union tags and attributes, move identities, events
    and deliveries, keep the stricter consent state, and record what moved (DESIGN section 4)."""
    if contact_id == other_id:
        raise ValidationFailed(
            "A contact cannot be merged with itself",
            errors=[FieldError("contact_id", "same contact")],
        )
    first = await _get(session, workspace_id, contact_id)
    second = await _get(session, workspace_id, other_id)
    kept, merged = (first, second) if first.id <= second.id else (second, first)
    moved: dict[str, Any] = {
        "merged_contact": {
            "name": merged.name,
            "locale": merged.locale,
            "timezone": merged.timezone,
            "attributes": merged.attributes,
            "created_at": merged.created_at.isoformat(),
        },
        "kept_before": {
            "name": kept.name,
            "locale": kept.locale,
            "timezone": kept.timezone,
            "attributes": kept.attributes,
        },
    }
    kept.name = kept.name or merged.name
    kept.locale = kept.locale or merged.locale
    kept.timezone = kept.timezone or merged.timezone
    kept.attributes = {**(merged.attributes or {}), **(kept.attributes or {})}

    tag_table = table_of(ContactTag)
    kept_tags = set(
        (
            await session.execute(
                sa.select(tag_table.c.tag).where(tag_table.c.contact_id == kept.id)
            )
        ).scalars()
    )
    merged_tags = list(
        (
            await session.execute(
                sa.select(tag_table.c.tag).where(tag_table.c.contact_id == merged.id)
            )
        ).scalars()
    )
    moved["tags_added"] = sorted(set(merged_tags) - kept_tags)
    moved["merged_tags"] = sorted(merged_tags)
    await add_tags(
        session, workspace_id=workspace_id, contact_id=kept.id, tags=merged_tags, now=now
    )
    await session.execute(sa.delete(tag_table).where(tag_table.c.contact_id == merged.id))

    kept_email = await _email_of(session, kept.id)
    merged_email = await _email_of(session, merged.id)
    moved["merge_ledger_id"] = None
    if merged_email is not None and kept_email is not None:
        # An opt-out, bounce or complaint on either address speaks for the person; record it on
        # the kept address too, as a ledger row (the status stays a projection of the ledger).
        strict = stricter(kept_email.status, merged_email.status)  # type: ignore[arg-type]
        action = _OPT_OUT_ACTIONS.get(strict)
        if strict != kept_email.status and action is not None:
            ledger_id = new_id("cl")
            await session.execute(
                sa.insert(table_of(ConsentRecord)).values(
                    id=ledger_id,
                    workspace_id=workspace_id,
                    contact_id=kept.id,
                    channel="email",
                    action=action,
                    source="merge",
                    address=kept_email.address,
                    occurred_at=now,
                    created_at=now,
                )
            )
            moved["merge_ledger_id"] = ledger_id
            await _reproject(session, kept_email, now)
    moved_rows: dict[str, list[str]] = {}
    await session.flush()
    for model in _MOVABLE:
        table = table_of(model)
        ids = list(
            (
                await session.execute(sa.select(table.c.id).where(table.c.contact_id == merged.id))
            ).scalars()
        )
        moved_rows[table.name] = ids
        if ids:
            await session.execute(
                sa.update(table).where(table.c.contact_id == merged.id).values(contact_id=kept.id)
            )
    moved["rows"] = moved_rows
    # The rows moved by Core statements; loaded ORM copies must not keep the old contact id.
    kept_id, merged_id = kept.id, merged.id
    session.expire_all()
    kept = await _get(session, workspace_id, kept_id)
    merged = await session.get(Contact, merged_id, populate_existing=True)  # type: ignore[assignment]
    assert merged is not None
    merged.merged_into = kept.id
    record = ContactMerge(
        id=new_id("mg"),
        workspace_id=workspace_id,
        kept_id=kept.id,
        merged_id=merged.id,
        moved=moved,
        created_at=now,
    )
    session.add(record)
    kept.updated_at = now
    await session.flush()
    return await view(session, workspace_id=workspace_id, contact_id=kept.id), record.id


class MergeNotFound(NotFound):
    slug = "merge-not-found"
    title = "Merge not found"


async def revert_merge(
    session: AsyncSession, *, workspace_id: str, merge_id: str, now: datetime
) -> tuple[ContactView, ContactView]:
    """Undo a merge from its record: rows move back, tags and fields return, the merged contact
    lives again. Rows created after the merge stay with the kept contact."""
    record = await session.get(ContactMerge, merge_id)
    if record is None or record.workspace_id != workspace_id:
        raise MergeNotFound(f"No merge {merge_id!r}")
    if record.reverted_at is not None:
        raise Conflict(f"Merge {merge_id!r} was already reverted")
    kept = await _get(session, workspace_id, record.kept_id)
    merged = await session.get(Contact, record.merged_id)
    if merged is None or merged.merged_into != kept.id:
        raise Conflict(f"Merge {merge_id!r} can no longer be reverted")
    moved = record.moved
    await session.flush()
    for name, ids in moved["rows"].items():
        if ids:
            table = table_of_name(name)
            await session.execute(
                sa.update(table).where(table.c.id.in_(ids)).values(contact_id=merged.id)
            )
    kept_id, merged_id = record.kept_id, record.merged_id
    session.expire_all()
    kept = await _get(session, workspace_id, kept_id)
    merged = await session.get(Contact, merged_id, populate_existing=True)
    record = await session.get(ContactMerge, merge_id, populate_existing=True)
    assert merged is not None
    assert record is not None
    before = moved["kept_before"]
    kept.name, kept.locale, kept.timezone = before["name"], before["locale"], before["timezone"]
    kept.attributes = before["attributes"]
    if moved.get("merge_ledger_id"):
        # The one ledger row the merge derived is withdrawn with it.
        ledger = table_of(ConsentRecord)
        await session.execute(sa.delete(ledger).where(ledger.c.id == moved["merge_ledger_id"]))
        for identity in (
            await session.execute(
                sa.select(EmailIdentity).where(col(EmailIdentity.contact_id) == kept.id)
            )
        ).scalars():
            await _reproject(session, identity, now)
    tag_table = table_of(ContactTag)
    if moved["tags_added"]:
        await session.execute(
            sa.delete(tag_table).where(
                tag_table.c.contact_id == kept.id, tag_table.c.tag.in_(moved["tags_added"])
            )
        )
    await add_tags(
        session, workspace_id=workspace_id, contact_id=merged.id, tags=moved["merged_tags"], now=now
    )
    merged.merged_into = None
    merged.updated_at = now
    kept.updated_at = now
    record.reverted_at = now
    await session.flush()
    return (
        await view(session, workspace_id=workspace_id, contact_id=kept.id),
        await view(session, workspace_id=workspace_id, contact_id=merged.id),
    )


_OPT_OUT_ACTIONS: dict[str, Literal["unsubscribe", "bounce", "complaint"]] = {
    "unsubscribed": "unsubscribe",
    "bounced": "bounce",
    "complained": "complaint",
}
_MOVABLE = (EmailIdentity, MessengerIdentity, InteractionEvent, Delivery, ConsentRecord)


def table_of_name(name: str) -> sa.Table:
    for model in _MOVABLE:
        table = table_of(model)
        if table.name == name:
            return table
    raise KeyError(name)
