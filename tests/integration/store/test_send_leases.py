"""Page send leases (DESIGN section 8): a worker claims a Page's deliveries only while it holds
the Page's lease; another worker leaves that Page alone until the lease lapses."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.dispatch import claim_due
from orchestrator.ids import new_id
from orchestrator.models import Contact, Delivery, MessengerIdentity, Page, SendLease, table_of
from tests.fixtures.api import T0, Tenant
from tests.integration.api.test_contacts_api import add_page

LEASE = timedelta(seconds=30)


async def seed(
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    *,
    pages: tuple[tuple[str, int], ...] = (("P1", 10), ("P2", 0)),
    on_messenger: bool = True,
) -> None:
    """Three due rows a Page; their contacts have a Messenger identity on it (they may go out
    on Messenger, so they need the Page's lease) unless `on_messenger` is False."""
    async with sessions() as s:
        known = set((await s.execute(sa.select(table_of(Page).c.page_id))).scalars())
    for page_id, _ in pages:
        if page_id not in known:
            await add_page(sessions, tenant, page_id)
    async with sessions() as s, s.begin():
        for page_id, older in pages:
            for n in range(3):
                contact_id = new_id("ct")
                s.add(
                    Contact(
                        id=contact_id,
                        workspace_id=tenant.workspace_id,
                        created_at=T0,
                        updated_at=T0,
                    )
                )
                await s.flush()
                if on_messenger:
                    s.add(
                        MessengerIdentity(
                            id=new_id("mi"),
                            workspace_id=tenant.workspace_id,
                            contact_id=contact_id,
                            page_id=page_id,
                            psid=new_id("psid"),
                            created_at=T0,
                            updated_at=T0,
                        )
                    )
                s.add(
                    Delivery(
                        id=new_id("dl"),
                        workspace_id=tenant.workspace_id,
                        kind="human_reply",
                        contact_id=contact_id,
                        page_id=page_id,
                        purpose="human_reply",
                        state="pending",
                        due_at=T0 - timedelta(seconds=older + n),
                        created_at=T0,
                        updated_at=T0,
                    )
                )


async def claim(
    sessions: async_sessionmaker[AsyncSession], worker: str, *, at: timedelta, limit: int
) -> set[str]:
    async with sessions() as s, s.begin():
        ids = await claim_due(
            s,
            worker_id=worker,
            now=T0 + at,
            limit=limit,
            lease=timedelta(minutes=5),
            page_lease=LEASE,
        )
        deliveries = table_of(Delivery)
        rows = await s.execute(sa.select(deliveries.c.page_id).where(deliveries.c.id.in_(ids)))
        return {row.page_id for row in rows}


async def test_a_page_is_sent_for_by_one_worker_at_a_time(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await seed(sessions, tenant)
    # Worker A takes two rows, all of Page P1 (the oldest due first): it now holds P1's lease.
    assert await claim(sessions, "wk_a", at=timedelta(0), limit=2) == {"P1"}
    # Worker B may not touch P1 while A's lease runs; it gets P2 and P2's lease.
    assert await claim(sessions, "wk_b", at=timedelta(seconds=1), limit=10) == {"P2"}
    async with sessions() as s:
        leases = {
            row.key: (row.owner, row.expires_at)
            for row in (await s.execute(sa.select(table_of(SendLease)))).all()
        }
    assert leases == {
        "page:P1": ("wk_a", T0 + LEASE),
        "page:P2": ("wk_b", T0 + timedelta(seconds=1) + LEASE),
    }
    # A renews its own lease when it claims again.
    assert await claim(sessions, "wk_a", at=timedelta(seconds=2), limit=10) == {"P1"}
    # When A's lease lapses (a dead worker), B may take P1 over.
    await seed(sessions, tenant)
    assert await claim(sessions, "wk_b", at=timedelta(seconds=20), limit=10) == {"P2"}
    assert await claim(sessions, "wk_b", at=timedelta(seconds=33), limit=10) == {"P1"}
    async with sessions() as s:
        owner = (
            await s.execute(
                sa.select(table_of(SendLease).c.owner).where(table_of(SendLease).c.key == "page:P1")
            )
        ).scalar_one()
    assert owner == "wk_b"


async def leases(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessions() as s:
        rows = (await s.execute(sa.select(table_of(SendLease)))).all()
    return {row.key: row.owner for row in rows}


async def test_rows_that_cannot_go_out_on_messenger_need_no_page_lease(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await seed(sessions, tenant, pages=(("P1", 10),))
    assert await claim(sessions, "wk_a", at=timedelta(0), limit=10) == {"P1"}
    # Contacts with no identity on P1 (their step goes out by email, or is skipped): worker B
    # takes them while A holds P1, and takes no lease for them.
    await seed(sessions, tenant, pages=(("P1", 5),), on_messenger=False)
    assert await claim(sessions, "wk_b", at=timedelta(seconds=1), limit=10) == {"P1"}
    assert await leases(sessions) == {"page:P1": "wk_a"}


async def test_a_claim_takes_at_most_one_page_it_does_not_hold(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await seed(sessions, tenant, pages=(("P1", 10), ("P2", 5), ("P3", 0)))
    # The oldest rows are P1's: A takes P1 and leaves P2 and P3 to other workers.
    assert await claim(sessions, "wk_a", at=timedelta(0), limit=10) == {"P1"}
    assert await claim(sessions, "wk_b", at=timedelta(seconds=1), limit=10) == {"P2"}
    assert await leases(sessions) == {"page:P1": "wk_a", "page:P2": "wk_b"}
    # A keeps P1 and may add one more Page: P3.
    await seed(sessions, tenant, pages=(("P1", 0),))
    assert await claim(sessions, "wk_a", at=timedelta(seconds=2), limit=10) == {"P1", "P3"}
