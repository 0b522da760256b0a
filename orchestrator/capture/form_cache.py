"""The public forms a capture reads, kept in process memory for a few seconds.

A capture needs its form (origins, workspace, opt-in mode, Page) before it can answer; reading it
from the database for every request was a third of a capture's cost. A form changed through this
process (`forms.update_form`, `forms.delete_form`) is read again at once; a change made by
another API process shows within `ttl` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.capture import capture, forms
from orchestrator.models import CaptureForm

TTL_SECONDS = 5.0
MAX_FORMS = 10_000


@dataclass(frozen=True)
class PublicForm:
    form: CaptureForm  # detached: read it, never change it
    page_username: str | None
    read_at: float
    changes: int


class FormCache:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._clock = clock
        self._forms: dict[str, PublicForm] = {}
        self._loading: dict[str, asyncio.Future[PublicForm]] = {}

    async def get(self, form_id: str) -> PublicForm:
        """Raises `forms.FormNotFound` (never cached: a form may be created any time)."""
        now = self._clock()
        found = self._forms.get(form_id)
        if (
            found is not None
            and now - found.read_at < self._ttl
            and found.changes == forms.changed()
        ):
            return found
        # One read per form at a time: the requests that find it stale meanwhile share it.
        loading = self._loading.get(form_id)
        if loading is None:
            loading = asyncio.ensure_future(self._read(form_id, now))
            self._loading[form_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(form_id, None))
        return await asyncio.shield(loading)

    async def _read(self, form_id: str, now: float) -> PublicForm:
        changes = forms.changed()
        async with self._sessions() as session:
            form = await forms.get_public_form(session, form_id)
            username = await capture.page_username(session, form)
            session.expunge(form)
        if len(self._forms) >= MAX_FORMS:
            self._forms.clear()  # random ids cannot get here (unknown forms are not kept)
        found = PublicForm(form, username, now, changes)
        self._forms[form_id] = found
        return found
