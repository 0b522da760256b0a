"""Exporting contacts as CSV or JSON Lines, streamed in id order with bounded memory.

The output is the import format, so exporting and importing into another workspace reproduces
the contacts (email, name, locale, time zone, tags, attributes and the consent that made an
address `subscribed`). What does not travel: opt-outs, bounces and complaints (they stay in this
workspace's ledger and suppression list: an import can only claim consent, so an unsubscribed
address is exported without consent and arrives `unconfirmed`), Messenger identities, tags that
contain `;` (CSV only; JSON Lines keeps them) and attribute value types (CSV writes non-text values
as JSON text, which an import reads back as text; JSON Lines keeps the types).

Rows are read through SQLAlchemy Core in keyset pages of `page_size` contacts, each page in its own
short transaction: on SQLite every transaction holds the write lock (orchestrator.db), so one
transaction held open for a long download would stall every writer meanwhile.

CSV cells that begin with `=`, `+`, `-`, `@`, a tab or a carriage return (and, to keep the round
trip exact, a quote) get a leading `'`, so that a spreadsheet shows them as text instead of running
them as formulas (OWASP "CSV injection"). That includes legitimate values such as an address
`-lan@example.com`; the import drops the quote again. JSON Lines is never altered.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.audience import AudienceFilter, audience_condition
from orchestrator.db import transaction
from orchestrator.imports.parsing import ATTRIBUTE_PREFIX, FIXED_COLUMNS, Format, neutralised
from orchestrator.models import ConsentRecord, Contact, ContactTag, EmailIdentity, table_of

PAGE_SIZE: Final = 1000
_CONSENTING: Final = ("subscribe", "confirm", "resubscribe")


@dataclass(frozen=True)
class ExportedContact:
    id: str
    email: str | None
    name: str | None
    locale: str | None
    timezone: str | None
    tags: list[str]
    attributes: dict[str, Any]
    consent_source: str | None
    consent_at: datetime | None


# -- formatting (pure) -----------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def csv_header(attribute_names: Sequence[str]) -> list[str]:
    return [*FIXED_COLUMNS, *(ATTRIBUTE_PREFIX + name for name in attribute_names)]


def csv_cells(contact: ExportedContact, attribute_names: Sequence[str]) -> list[str]:
    cells = [
        contact.email or "",
        contact.name or "",
        contact.locale or "",
        contact.timezone or "",
        ";".join(contact.tags),
        contact.consent_source or "",
        contact.consent_at.isoformat() if contact.consent_at else "",
        *(_cell(contact.attributes.get(name)) for name in attribute_names),
    ]
    return [neutralised(cell) for cell in cells]


def csv_text(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def jsonl_line(contact: ExportedContact) -> str:
    return (
        json.dumps(
            {
                "email": contact.email,
                "name": contact.name,
                "locale": contact.locale,
                "timezone": contact.timezone,
                "tags": contact.tags,
                "consent_source": contact.consent_source,
                "consent_at": contact.consent_at.isoformat() if contact.consent_at else None,
                "attributes": contact.attributes,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        + "\n"
    )


# -- reading ---------------------------------------------------------------------------------


async def attribute_names(
    sessions: async_sessionmaker[AsyncSession], *, workspace_id: str, audience: AudienceFilter
) -> list[str]:
    """Every attribute name among the matching contacts: the CSV header's `attr.*` columns."""
    contacts = table_of(Contact)
    condition = audience_condition(workspace_id, audience)
    async with transaction(sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            query = (
                sa.select(sa.func.jsonb_object_keys(contacts.c.attributes).label("name"))
                .where(condition)
                .distinct()
            )
        else:
            keys = sa.func.json_each(contacts.c.attributes).table_valued("key")
            query = (
                sa.select(keys.c.key)
                .select_from(contacts.join(keys, sa.true()))
                .where(condition)
                .distinct()
            )
        names = {str(name) for name in (await session.execute(query)).scalars()}
    return sorted(names)


async def _page(
    session: AsyncSession, workspace_id: str, audience: AudienceFilter, after: str | None, size: int
) -> list[ExportedContact]:
    contacts, tags, ledger = table_of(Contact), table_of(ContactTag), table_of(ConsentRecord)
    # Aliases: the audience's own EXISTS on email_identities must not correlate with these.
    emails = table_of(EmailIdentity).alias("primary_email")
    oldest = table_of(EmailIdentity).alias("oldest")
    primary = (
        sa.select(oldest.c.id)
        .where(oldest.c.contact_id == contacts.c.id)
        .order_by(oldest.c.created_at, oldest.c.id)
        .limit(1)
        .scalar_subquery()
    )
    query = (
        sa.select(
            contacts.c.id,
            contacts.c.name,
            contacts.c.locale,
            contacts.c.timezone,
            contacts.c.attributes,
            emails.c.address,
            emails.c.status,
        )
        .select_from(contacts.outerjoin(emails, emails.c.id == primary))
        .where(audience_condition(workspace_id, audience))
        .order_by(contacts.c.id)
        .limit(size)
    )
    if after is not None:
        query = query.where(contacts.c.id > after)
    rows = (await session.execute(query)).all()
    if not rows:
        return []
    ids = [row.id for row in rows]
    tag_lists: dict[str, list[str]] = {}
    for contact_id, tag in await session.execute(
        sa.select(tags.c.contact_id, tags.c.tag)
        .where(tags.c.contact_id.in_(ids))
        .order_by(tags.c.contact_id, tags.c.tag)
    ):
        tag_lists.setdefault(contact_id, []).append(tag)
    subscribed = [row.id for row in rows if row.status == "subscribed"]
    consent: dict[tuple[str, str], tuple[str, datetime]] = {}
    if subscribed:
        # The latest consent event of each subscribed address is the evidence that travels.
        for contact_id, address, source, occurred_at in await session.execute(
            sa.select(ledger.c.contact_id, ledger.c.address, ledger.c.source, ledger.c.occurred_at)
            .where(
                ledger.c.contact_id.in_(subscribed),
                ledger.c.channel == "email",
                ledger.c.action.in_(_CONSENTING),
            )
            .order_by(ledger.c.occurred_at, ledger.c.created_at)
        ):
            consent[(contact_id, address)] = (source, occurred_at)
    exported = []
    for row in rows:
        source, at = consent.get((row.id, row.address), (None, None))
        exported.append(
            ExportedContact(
                id=row.id,
                email=row.address,
                name=row.name,
                locale=row.locale,
                timezone=row.timezone,
                tags=tag_lists.get(row.id, []),
                attributes=dict(row.attributes or {}),
                consent_source=source if row.status == "subscribed" else None,
                consent_at=at if row.status == "subscribed" else None,
            )
        )
    return exported


async def exported_contacts(
    sessions: async_sessionmaker[AsyncSession],
    *,
    workspace_id: str,
    audience: AudienceFilter,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[list[ExportedContact]]:
    """The matching contacts in id order, a page at a time."""
    after: str | None = None
    while True:
        async with transaction(sessions) as session:
            page = await _page(session, workspace_id, audience, after, page_size)
        if page:
            yield page
        if len(page) < page_size:
            return
        after = page[-1].id


async def export_text(
    sessions: async_sessionmaker[AsyncSession],
    *,
    workspace_id: str,
    audience: AudienceFilter,
    file_format: Format,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[str]:
    """The export file, a page of contacts per piece of text."""
    names: list[str] = []
    if file_format == "csv":
        names = await attribute_names(sessions, workspace_id=workspace_id, audience=audience)
        yield csv_text([csv_header(names)])
    async for page in exported_contacts(
        sessions, workspace_id=workspace_id, audience=audience, page_size=page_size
    ):
        if file_format == "csv":
            yield csv_text(csv_cells(contact, names) for contact in page)
        else:
            yield "".join(jsonl_line(contact) for contact in page)
