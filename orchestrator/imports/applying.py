"""Applying a batch of import rows with set-based SQL (SQLAlchemy Core, DESIGN section 8).

The result is the one `contacts.upsert_contact` gives called row by row with source "import":
a few queries load what the batch's addresses already have (identities with their contacts,
tags, consent ledger, suppression), the rows are folded in file order in memory (so a later row
for the same address updates the contact an earlier one created), and the changes are written
with one bulk statement per table. Services never commit: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from orchestrator import suppression
from orchestrator.consent import Action, EmailStatus, next_status
from orchestrator.contacts import Consent
from orchestrator.crypto import KeyRing
from orchestrator.ids import new_id
from orchestrator.imports.bulk import insert_rows, matches, update_rows
from orchestrator.imports.validation import ImportRow, RowError
from orchestrator.models import (
    ConsentRecord,
    Contact,
    ContactTag,
    EmailIdentity,
    Suppression,
    table_of,
)

IMPORT_SOURCE: Final = "import"
_LEDGER_KEY: Final = ["contact_id", "action", "source", "occurred_at"]

Outcome = Literal["created", "updated", "unchanged"]


@dataclass
class BatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)


@dataclass
class _Address:
    """One address's contact, identity, tags and ledger as the batch changes them."""

    contact_id: str
    identity_id: str
    new: bool
    name: str | None
    locale: str | None
    timezone: str | None
    attributes: dict[str, Any]
    merged_into: str | None
    status: str
    status_changed_at: datetime
    status_changed: bool = False
    touched: bool = False
    tags: set[str] = field(default_factory=set)
    # (action, source, occurred_at) of the contact's ledger rows: the ledger's dedup key.
    ledger_keys: set[tuple[str, str, datetime]] = field(default_factory=set)
    # (occurred_at, created_at, action) of the address's ledger rows: the status replays them.
    events: list[tuple[datetime, datetime, str]] = field(default_factory=list)


def merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Attributes merge; a null removes the key (as `contacts.upsert_contact` does)."""
    result = dict(current)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def projected(events: Iterable[tuple[datetime, datetime, str]]) -> EmailStatus:
    status: EmailStatus = "unconfirmed"
    for _, _, action in sorted(events, key=lambda event: (event[0], event[1])):
        status = next_status(status, action)  # type: ignore[arg-type]
    return status


class _Batch:
    def __init__(self, workspace_id: str, now: datetime) -> None:
        self.workspace_id = workspace_id
        self.now = now
        self.addresses: dict[str, _Address] = {}
        self.ledger_rows: list[dict[str, Any]] = []
        self.tag_rows: list[dict[str, Any]] = []
        self.result = BatchResult()

    def create(self, row: ImportRow, events: list[tuple[datetime, datetime, str]]) -> _Address:
        state = _Address(
            contact_id=new_id("ct"),
            identity_id=new_id("em"),
            new=True,
            name=row.name,
            locale=row.locale,
            timezone=row.timezone,
            attributes=merged({}, row.attributes),
            merged_into=None,
            status="unconfirmed",
            status_changed_at=self.now,
            events=events,
        )
        self.addresses[row.address] = state
        return state

    def record(self, state: _Address, address: str, action: Action, consent: Consent) -> bool:
        key = (action, consent.source, consent.at)
        if key in state.ledger_keys:
            return False
        state.ledger_keys.add(key)
        self.ledger_rows.append(
            {
                "id": new_id("cl"),
                "workspace_id": self.workspace_id,
                "contact_id": state.contact_id,
                "channel": "email",
                "topic": consent.topic,
                "action": action,
                "source": consent.source,
                "form_id": consent.form_id,
                "consent_text_version": consent.text_version,
                "address": address,
                "ip": consent.ip,
                "user_agent": consent.user_agent,
                "occurred_at": consent.at,
                "created_at": self.now,
            }
        )
        state.events.append((consent.at, self.now, action))
        status = projected(state.events)
        if status != state.status:
            state.status = status
            state.status_changed_at = self.now
            state.status_changed = True
        return True

    def apply_fields(self, state: _Address, row: ImportRow) -> bool:
        changed = False
        for name in ("name", "locale", "timezone"):
            value = getattr(row, name)
            if value is not None and getattr(state, name) != value:
                setattr(state, name, value)
                changed = True
        if row.attributes:
            attributes = merged(state.attributes, row.attributes)
            if attributes != state.attributes:
                state.attributes = attributes
                changed = True
        return changed

    def add_tags(self, state: _Address, tags: Sequence[str]) -> bool:
        added = sorted(set(tags) - state.tags)
        state.tags.update(added)
        self.tag_rows.extend(
            {
                "contact_id": state.contact_id,
                "tag": tag,
                "workspace_id": self.workspace_id,
                "created_at": self.now,
            }
            for tag in added
        )
        return bool(added)

    def count(self, outcome: Outcome) -> None:
        setattr(self.result, outcome, getattr(self.result, outcome) + 1)


async def apply_rows(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    workspace_id: str,
    rows: Sequence[ImportRow],
    now: datetime,
) -> BatchResult:
    """Upsert the rows (in file order) by email address. Raises `IntegrityError` when another
    writer created one of the addresses meanwhile; the caller retries the batch."""
    batch = _Batch(workspace_id, now)
    if not rows:
        return batch.result
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        # After five runs psycopg prepares these statements, and PostgreSQL's generic plan, made
        # on the stale statistics of tables an import is filling, scans the whole workspace's
        # ledger through ix_consent_ledger_workspace_id instead of ix_consent_ledger_address
        # (measured: 50,000 rows, 11 s of 18 s in that query). Plan each run with its values.
        await conn.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
    addresses = list(dict.fromkeys(row.address for row in rows))
    existing = await _existing(conn, workspace_id, addresses)
    new_addresses = [address for address in addresses if address not in existing]
    suppressed = await _suppressed(conn, keyring, workspace_id, new_addresses)
    consenting = {row.address for row in rows if row.consent is not None}
    ledger_addresses = sorted(consenting | suppressed)
    events = await _events(conn, workspace_id, ledger_addresses)
    await _load_ledger_keys(conn, [existing[a] for a in ledger_addresses if a in existing])
    await _load_tags(
        conn, [existing[row.address] for row in rows if row.tags and row.address in existing]
    )
    batch.addresses.update(existing)
    for address in ledger_addresses:
        if address in existing:
            existing[address].events = events.get(address, [])

    for row in rows:
        state = batch.addresses.get(row.address)
        if state is None:
            state = batch.create(row, events.get(row.address, []))
            outcome: Outcome = "created"
            if row.address in suppressed:
                # A suppressed address enters unsubscribed with its ledger row, and no consent
                # claim lifts it (consent.LOCKED), as in contacts._attach_email.
                batch.record(state, row.address, "unsubscribe", Consent(IMPORT_SOURCE, now))
            changed = True
        elif state.merged_into is not None:
            batch.result.errors.append(
                RowError(row.line, "email", f"the contact was merged into {state.merged_into}")
            )
            continue
        else:
            outcome = "updated"
            changed = batch.apply_fields(state, row)
        if row.consent is not None:
            changed |= batch.record(state, row.address, "subscribe", row.consent)
        changed |= batch.add_tags(state, row.tags)
        if changed and outcome == "updated":
            state.touched = True
        batch.count(outcome if changed or outcome == "created" else "unchanged")

    await _write(conn, batch)
    return batch.result


async def _existing(
    conn: AsyncConnection, workspace_id: str, addresses: list[str]
) -> dict[str, _Address]:
    emails, contacts = table_of(EmailIdentity), table_of(Contact)
    rows = await conn.execute(
        sa.select(
            emails.c.address,
            emails.c.id,
            emails.c.contact_id,
            emails.c.status,
            emails.c.status_changed_at,
            contacts.c.name,
            contacts.c.locale,
            contacts.c.timezone,
            contacts.c.attributes,
            contacts.c.merged_into,
        )
        .join(contacts, contacts.c.id == emails.c.contact_id)
        .where(emails.c.workspace_id == workspace_id, matches(conn, emails.c.address, addresses))
    )
    return {
        row.address: _Address(
            contact_id=row.contact_id,
            identity_id=row.id,
            new=False,
            name=row.name,
            locale=row.locale,
            timezone=row.timezone,
            attributes=dict(row.attributes or {}),
            merged_into=row.merged_into,
            status=row.status,
            status_changed_at=row.status_changed_at,
        )
        for row in rows
    }


async def _suppressed(
    conn: AsyncConnection, keyring: KeyRing, workspace_id: str, addresses: list[str]
) -> set[str]:
    if not addresses:
        return set()
    table = table_of(Suppression)
    any_suppressed = await conn.execute(
        sa.select(sa.literal(1)).where(table.c.workspace_id == workspace_id).limit(1)
    )
    if any_suppressed.first() is None:
        return set()
    by_hash: dict[str, str] = {}
    for address in addresses:
        for digest in suppression.address_hashes(
            keyring, workspace_id=workspace_id, address=address
        ):
            by_hash[digest] = address
    found = await conn.execute(
        sa.select(table.c.address_hash).where(
            table.c.workspace_id == workspace_id, matches(conn, table.c.address_hash, list(by_hash))
        )
    )
    return {by_hash[digest] for (digest,) in found}


async def _events(
    conn: AsyncConnection, workspace_id: str, addresses: list[str]
) -> dict[str, list[tuple[datetime, datetime, str]]]:
    events: dict[str, list[tuple[datetime, datetime, str]]] = {}
    if not addresses:
        return events
    ledger = table_of(ConsentRecord)
    rows = await conn.execute(
        sa.select(ledger.c.address, ledger.c.occurred_at, ledger.c.created_at, ledger.c.action)
        .where(
            ledger.c.workspace_id == workspace_id,
            matches(conn, ledger.c.address, addresses),
            ledger.c.channel == "email",
        )
        .order_by(ledger.c.occurred_at, ledger.c.created_at)
    )
    for address, occurred_at, created_at, action in rows:
        events.setdefault(address, []).append((occurred_at, created_at, action))
    return events


async def _load_ledger_keys(conn: AsyncConnection, states: list[_Address]) -> None:
    if not states:
        return
    by_contact = {state.contact_id: state for state in states}
    ledger = table_of(ConsentRecord)
    rows = await conn.execute(
        sa.select(
            ledger.c.contact_id, ledger.c.action, ledger.c.source, ledger.c.occurred_at
        ).where(
            matches(conn, ledger.c.contact_id, list(by_contact)),
            ledger.c.action.in_(("subscribe", "unsubscribe")),
        )
    )
    for contact_id, action, source, occurred_at in rows:
        by_contact[contact_id].ledger_keys.add((action, source, occurred_at))


async def _load_tags(conn: AsyncConnection, states: list[_Address]) -> None:
    if not states:
        return
    by_contact = {state.contact_id: state for state in states}
    tags = table_of(ContactTag)
    rows = await conn.execute(
        sa.select(tags.c.contact_id, tags.c.tag).where(
            matches(conn, tags.c.contact_id, list(by_contact))
        )
    )
    for contact_id, tag in rows:
        by_contact[contact_id].tags.add(tag)


async def _write(conn: AsyncConnection, batch: _Batch) -> None:
    now = batch.now
    created = [(address, s) for address, s in batch.addresses.items() if s.new]
    await insert_rows(
        conn,
        table_of(Contact),
        [
            {
                "id": s.contact_id,
                "workspace_id": batch.workspace_id,
                "name": s.name,
                "locale": s.locale,
                "timezone": s.timezone,
                "attributes": s.attributes,
                "merged_into": None,
                "created_at": now,
                "updated_at": now,
            }
            for _, s in created
        ],
    )
    # No conflict clause: an address another writer added meanwhile fails the batch (retried).
    await insert_rows(
        conn,
        table_of(EmailIdentity),
        [
            {
                "id": s.identity_id,
                "workspace_id": batch.workspace_id,
                "contact_id": s.contact_id,
                "address": address,
                "status": s.status,
                "status_changed_at": s.status_changed_at,
                "created_at": now,
            }
            for address, s in created
        ],
    )
    # Rows of contacts created in this batch cannot conflict (their ids are new): a plain INSERT
    # spares PostgreSQL the speculative insertion of ON CONFLICT.
    fresh = {s.contact_id for _, s in created}
    for table, rows, key in (
        (table_of(ContactTag), batch.tag_rows, ["contact_id", "tag"]),
        (table_of(ConsentRecord), batch.ledger_rows, _LEDGER_KEY),
    ):
        await insert_rows(conn, table, [r for r in rows if r["contact_id"] in fresh])
        await insert_rows(
            conn, table, [r for r in rows if r["contact_id"] not in fresh], ignore_conflicts_on=key
        )
    await update_rows(
        conn,
        table_of(Contact),
        [
            {
                "id": s.contact_id,
                "name": s.name,
                "locale": s.locale,
                "timezone": s.timezone,
                "attributes": s.attributes,
                "updated_at": now,
            }
            for s in batch.addresses.values()
            if s.touched and not s.new
        ],
    )
    await update_rows(
        conn,
        table_of(EmailIdentity),
        [
            {"id": s.identity_id, "status": s.status, "status_changed_at": s.status_changed_at}
            for s in batch.addresses.values()
            if s.status_changed and not s.new
        ],
    )
