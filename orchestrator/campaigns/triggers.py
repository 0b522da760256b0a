"""Contact events that start trigger campaigns (DESIGN section 7: `tag_added`, `first_message`).

`runs.fire_trigger` starts one run per matching running campaign for one contact, idempotent per
event id. Tags fire when the contacts API adds a tag the contact did not have; imports never fire
per row (an import of 100,000 rows starting 100,000 runs is a decision of its own). The first
message fires from the inbox (`inbound.py`) when a person's message or postback creates the
Messenger identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.campaigns import runs
from orchestrator.contacts import TagsAdded


async def fire_tags_added(
    session: AsyncSession,
    *,
    workspace_id: str,
    contact_id: str,
    tags: Sequence[str],
    now: datetime,
) -> int:
    """Fire `tag_added` for each tag new to the contact; returns how many runs started."""
    started = 0
    for tag in tags:
        started += await runs.fire_trigger(
            session,
            workspace_id=workspace_id,
            on="tag_added",
            key=tag,
            contact_id=contact_id,
            # A tag removed and added again later is a new event; the same request is not.
            event_id=f"tag:{contact_id}:{tag}:{now.isoformat()}",
            now=now,
        )
    return started


def on_tags_added(session: AsyncSession, *, workspace_id: str, now: datetime) -> TagsAdded:
    """The hook the contacts service calls with the tags a create or update added."""

    async def fire(contact_id: str, tags: Sequence[str]) -> None:
        await fire_tags_added(
            session, workspace_id=workspace_id, contact_id=contact_id, tags=tags, now=now
        )

    return fire


async def fire_first_message(
    session: AsyncSession,
    *,
    workspace_id: str,
    page_id: str,
    contact_id: str,
    event_id: str,
    now: datetime,
) -> int:
    """Fire `first_message` for a person whose message or postback created their Messenger
    identity on `page_id`; `event_id` names the inbox row, so applying it again starts nothing."""
    return await runs.fire_trigger(
        session,
        workspace_id=workspace_id,
        on="first_message",
        key=page_id,
        contact_id=contact_id,
        event_id=event_id,
        now=now,
    )
