"""The capture inbox: accept now, apply later (DESIGN section 10).

A popup or embedded form's answer needs nothing the database knows about the address: it is the
same for known and unknown addresses by design. So the request only records the token's use
and one inbox row, in one short transaction, and answers; the `capture.apply` job makes the
contact, the ledger rows, tags, double opt-in delivery and `captured` trigger in batches
(`capture.apply`, the same code the lucky wheel runs in its request). The row is durable before
the answer is sent (`InboxWriter` commits captures in batches, each request answered after its
batch's commit), so an accepted capture is never lost; it is deleted once applied.

The Messenger link in the answer names the id the contact will get if the address is new
(`contact_id` on the row); for a known address that id never comes to exist, exactly like the
link a synchronous capture gives a known address, so the answer still reveals nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from orchestrator.capture import capture, counters
from orchestrator.capture.guard import CaptureSettings
from orchestrator.capture.tokens import token_hash
from orchestrator.crypto import KeyRing
from orchestrator.db import insert_ignoring_conflicts
from orchestrator.ids import new_id
from orchestrator.models import CaptureForm, CaptureInbox, CaptureTokenUse, table_of

log = logging.getLogger(__name__)

PENDING = "pending"
FAILED = "failed"


@dataclass
class _Waiting:
    row: dict[str, Any]
    token_hash: str
    accepted: asyncio.Future[bool]


class InboxWriter:
    """Writes accepted captures with a group commit: each request's row joins the next batch,
    one transaction records the batch's token uses and inbox rows, and every request in it is
    answered once that commit is done. A burst of captures costs a connection and a commit per
    batch instead of per capture."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_batch: int = 200,
        max_writers: int = 2,
    ) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        # Sessions bound to one connection (not a pool) cannot run two transactions at once.
        one_connection = isinstance(sessions.kw.get("bind"), AsyncConnection)
        self._max_writers = 1 if one_connection else max_writers
        self._waiting: list[_Waiting] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._writing = 0  # writers inside a transaction

    async def accept(
        self, *, form: CaptureForm, token: str, submission: capture.Submission, now: datetime
    ) -> str:
        """Record the token's use and the capture; returns the id a new contact will get.

        Raises `capture.TokenReplayed` (writing nothing) when the token was used before."""
        contact_id = new_id("ct")
        row = {
            "id": new_id("ci"),
            "workspace_id": form.workspace_id,
            "form_id": form.id,
            "contact_id": contact_id,
            "address": submission.address,
            "name": submission.name,
            "locale": submission.locale,
            "consent_version": submission.consent_version,
            "ip": submission.ip,
            "user_agent": submission.user_agent,
            "status": PENDING,
            "received_at": now,
        }
        waiting = _Waiting(row, token_hash(token), asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        # Another writer only when every one is inside a commit: the rows that arrive meanwhile
        # need not wait for that commit to end before theirs starts.
        if self._writing == len(self._writers) < self._max_writers:
            task = asyncio.create_task(self._write_all())
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        # Shielded: a request that goes away still has its capture written with the batch.
        if not await asyncio.shield(waiting.accepted):
            raise capture.TokenReplayed("Fetch a new form token and submit again")
        return contact_id

    async def _write_all(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: len(batch)]
            self._writing += 1
            try:
                verdicts = await self._write(batch)
            except Exception as exc:
                for waiting in batch:
                    waiting.accepted.set_exception(exc)
                continue
            except BaseException:  # cancelled (the server stops): so are the waiting requests
                for waiting in [*batch, *self._waiting]:
                    waiting.accepted.cancel()
                raise
            finally:
                self._writing -= 1
            for waiting, verdict in zip(batch, verdicts, strict=True):
                waiting.accepted.set_result(verdict)

    async def _write(self, batch: list[_Waiting]) -> list[bool]:
        first: dict[str, _Waiting] = {}
        for waiting in batch:
            first.setdefault(waiting.token_hash, waiting)
        uses = table_of(CaptureTokenUse)
        async with self._sessions() as session, session.begin():
            # Many parameter sets with RETURNING: SQLAlchemy sends them as one INSERT and
            # compiles it once ("insertmanyvalues").
            inserted = await session.execute(
                insert_ignoring_conflicts(session, uses, ["token_hash"]).returning(
                    uses.c.token_hash
                ),
                [
                    {
                        "token_hash": digest,
                        "workspace_id": waiting.row["workspace_id"],
                        "form_id": waiting.row["form_id"],
                        "used_at": waiting.row["received_at"],
                    }
                    for digest, waiting in first.items()
                ],
            )
            fresh = {digest for (digest,) in inserted}
            accepted = [w for w in batch if w.token_hash in fresh and first[w.token_hash] is w]
            if accepted:
                await session.execute(sa.insert(table_of(CaptureInbox)), [w.row for w in accepted])
        return [w.token_hash in fresh and first[w.token_hash] is w for w in batch]


async def apply_pending(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    settings: CaptureSettings,
    limit: int = 200,
) -> int:
    """Apply up to `limit` pending captures in arrival order, each at its capture time and in a
    savepoint of its own (one bad row is marked failed and blocks nothing); returns how many
    rows were handled."""
    inbox = table_of(CaptureInbox)
    query = (
        sa.select(inbox)
        .where(inbox.c.status == PENDING)
        .order_by(inbox.c.received_at, inbox.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Several workers may run this job; each takes rows the others have not locked.
        query = query.with_for_update(skip_locked=True)
    rows = (await session.execute(query)).all()
    if not rows:
        return 0
    form_ids = {row.form_id for row in rows}
    forms = {
        form.id: form
        for form in (
            await session.execute(sa.select(CaptureForm).where(CaptureForm.id.in_(form_ids)))  # type: ignore[attr-defined]
        ).scalars()
    }
    outcomes: Counter[tuple[str, str, str]] = Counter()
    applied: list[str] = []
    for row in rows:
        form = forms.get(row.form_id)
        try:
            if form is None:
                raise LookupError(f"form {row.form_id} is gone")
            async with session.begin_nested():
                done = await capture.apply(
                    session,
                    keyring,
                    form=form,
                    submission=capture.Submission(
                        address=row.address,
                        consent_version=row.consent_version,
                        name=row.name,
                        locale=row.locale,
                        ip=row.ip,
                        user_agent=row.user_agent,
                    ),
                    settings=settings,
                    now=row.received_at,
                    new_contact_id=row.contact_id,
                )
        except Exception as exc:  # one bad capture must not block the inbox
            log.exception("capture failed", extra={"inbox_id": row.id})
            await session.execute(
                sa.update(inbox)
                .where(inbox.c.id == row.id)
                .values(status=FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
            )
            continue
        outcomes[(row.workspace_id, row.form_id, done.outcome)] += 1
        applied.append(row.id)
    if applied:
        await session.execute(sa.delete(inbox).where(inbox.c.id.in_(applied)))
    await counters.bump_many(session, outcomes)
    return len(rows)


async def apply_until_idle(
    sessions: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    *,
    settings: CaptureSettings,
    limit: int | None = None,
    budget: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Batch after batch, each in its own transaction, until the inbox is empty or `budget`
    seconds have passed; returns how many rows were handled. On SQLite a batch holds the write
    lock that captures wait for, so batches stay small there unless `limit` says otherwise."""
    started = monotonic()
    handled = 0
    while True:
        async with sessions() as session, session.begin():
            size = limit or (200 if session.get_bind().dialect.name == "postgresql" else 25)
            count = await apply_pending(session, keyring, settings=settings, limit=size)
        handled += count
        if count < size or (budget is not None and monotonic() - started >= budget):
            return handled


async def pending(session: AsyncSession) -> int:
    inbox = table_of(CaptureInbox)
    found = await session.execute(
        sa.select(sa.func.count()).select_from(inbox).where(inbox.c.status == PENDING)
    )
    return int(found.scalar_one())
