"""Audience filters as SQL conditions, shared by the contacts list and campaign audiences.

Building the condition is pure (no I/O): it returns a SQLAlchemy Core expression over the contacts
table that the caller streams (DESIGN section 8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from orchestrator.models import Contact, ContactTag, EmailIdentity, MessengerIdentity, table_of

MessengerRequirement = Literal["any", "required", "none"]


@dataclass(frozen=True)
class AudienceFilter:
    tags_any: Sequence[str] = ()
    tags_all: Sequence[str] = ()
    tags_none: Sequence[str] = ()
    email_status: Sequence[str] = ()
    messenger: MessengerRequirement = "any"
    page_id: str | None = None
    contact_ids: Sequence[str] = ()


def audience_condition(workspace_id: str, audience: AudienceFilter) -> sa.ColumnElement[bool]:
    contacts = table_of(Contact)
    tags = table_of(ContactTag)
    emails = table_of(EmailIdentity)
    identities = table_of(MessengerIdentity)
    conditions: list[sa.ColumnElement[bool]] = [
        contacts.c.workspace_id == workspace_id,
        contacts.c.merged_into.is_(None),
    ]
    if audience.contact_ids:
        conditions.append(contacts.c.id.in_(list(audience.contact_ids)))
    if audience.tags_any:
        conditions.append(
            sa.exists().where(
                tags.c.contact_id == contacts.c.id, tags.c.tag.in_(list(audience.tags_any))
            )
        )
    for tag in dict.fromkeys(audience.tags_all):
        conditions.append(sa.exists().where(tags.c.contact_id == contacts.c.id, tags.c.tag == tag))
    if audience.tags_none:
        conditions.append(
            ~sa.exists().where(
                tags.c.contact_id == contacts.c.id, tags.c.tag.in_(list(audience.tags_none))
            )
        )
    if audience.email_status:
        conditions.append(
            sa.exists().where(
                emails.c.contact_id == contacts.c.id,
                emails.c.status.in_(list(audience.email_status)),
            )
        )
    if audience.messenger != "any" or audience.page_id is not None:
        on_page = [identities.c.contact_id == contacts.c.id]
        if audience.page_id is not None:
            on_page.append(identities.c.page_id == audience.page_id)
        has_identity = sa.exists().where(*on_page)
        conditions.append(~has_identity if audience.messenger == "none" else has_identity)
    return sa.and_(*conditions)
