"""The dispatcher: claim due deliveries, decide with the policy and `now`, send, record.

Every send goes through a delivery row that exists before the provider is called (DESIGN section
4). Claims are conditional updates with a lease; the provider call happens outside any database
transaction; the outcome is written back only if this worker still holds the lease. Messenger
failures follow the adapter's error classes (DESIGN section 5): window closed and recipient
unavailable re-route at once, temporary and rate-limit errors back off with jitter, bad tokens and
restrictions pause the Page, a bare 100 is our own bug.

This first version sends the one-off Messenger deliveries (email requests, human replies, opt-in
requests); campaign steps and email join it in later issues.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from channels.email import EmailError, MessageInvalid, SmtpSender
from channels.messenger import MessengerClient, MessengerError, build_send_request
from channels.messenger.errors import ErrorClass, PageCooling
from channels.messenger.payloads import MessagingType as SendMessagingType
from channels.messenger.payloads import Recipient
from orchestrator import (
    channel_pauses,
    email_feedback,
    outbound_email,
    reachability,
    rendering,
    sweeps,
)
from orchestrator.campaigns import runs as campaign_runs
from orchestrator.campaigns import steps as campaign_steps
from orchestrator.capture import sending as capture_sending
from orchestrator.crypto import KeyRing
from orchestrator.db import insert_ignoring_conflicts, rows_affected, transaction
from orchestrator.delivery_states import Event, State, sources_of, transition
from orchestrator.logs import log_context
from orchestrator.models import (
    Campaign,
    Delivery,
    MessengerIdentity,
    OptinToken,
    Page,
    SendLease,
    table_of,
)
from orchestrator.pages import open_token
from orchestrator.policy import (
    Decision,
    Fallback,
    MessageSpec,
    MessengerFailure,
    Purpose,
    Reason,
    Route,
    SendContext,
    decide,
    decide_after_messenger_failure,
)
from orchestrator.send_budgets import CAMPAIGN_BUDGET_PREFIX, Budget, SendBudgets

log = logging.getLogger(__name__)

# Kinds the dispatcher knows how to send, with how the policy must see them (DESIGN section 4).
ONE_OFF_SPECS: dict[str, MessageSpec] = {
    "email_request": MessageSpec(
        purpose=Purpose.TRANSACTIONAL, is_reply=True, fallback=Fallback.SKIP
    ),
    "human_reply": MessageSpec(
        purpose=Purpose.HUMAN_REPLY, written_by_person=True, is_reply=True, fallback=Fallback.SKIP
    ),
    "optin_request": MessageSpec(purpose=Purpose.TRANSACTIONAL, fallback=Fallback.SKIP),
}
# Send lease keys: one per Page (DESIGN section 8).
PAGE_LEASE_PREFIX = "page:"
# The advisory lock key claims take turns on (any constant; this one spells "claim").
CLAIM_LOCK_KEY = 0x636C61696D
# Reference section 6: "person unavailable" may pass; we stop trying Messenger for a while.
UNAVAILABLE_FOR = timedelta(days=7)


@dataclass(frozen=True)
class EmailSettings:
    public_url: str
    default_from: str
    unsubscribe_mailto: str | None = None
    # The relay's global budget (`OUTREACH_SMTP_MAX_PER_SECOND` across every worker), under
    # the relay's key.
    relay_key: str = "smtp"
    relay_budget: Budget | None = None


@dataclass(frozen=True)
class DispatchSettings:
    lease: timedelta = timedelta(seconds=60)
    batch: int = 100
    max_attempts: int = 5
    backoff_base: timedelta = timedelta(seconds=2)
    backoff_cap: timedelta = timedelta(minutes=10)
    takeover_quiet: timedelta = timedelta(hours=24)
    # Deliveries of one batch in flight at once (each with its own short transactions); 1 for
    # sessions bound to a single connection, as in the rolled-back test transaction.
    concurrency: int = 1
    email: EmailSettings | None = None
    random: Callable[[], float] = field(default=random.random)
    # Global send budgets (campaign throttles, the relay's rate); None: this process's own
    # (see _budgets_of), which holds the limits only while one process sends.
    budgets: SendBudgets | None = None

    def backoff(self, attempt: int) -> timedelta:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
        return timedelta(seconds=ceiling.total_seconds() * self.random())


@dataclass(frozen=True)
class Outcome:
    state: State
    reason: str
    channel: str | None = None
    provider_message_id: str | None = None
    error: dict[str, Any] | None = None
    next_attempt_at: datetime | None = None
    held_until: datetime | None = None


async def release_expired_leases(session: AsyncSession, *, now: datetime) -> int:
    table = table_of(Delivery)
    result = await session.execute(
        sa.update(table)
        .where(
            table.c.state.in_([s.value for s in sources_of(Event.LEASE_EXPIRED)]),
            table.c.lease_expires_at < now,
        )
        .values(state=State.PENDING.value, lease_owner=None, lease_expires_at=None)
    )
    return rows_affected(result)


async def claim_due(
    session: AsyncSession,
    *,
    worker_id: str,
    now: datetime,
    limit: int,
    lease: timedelta,
    page_lease: timedelta | None = None,
) -> list[str]:
    """Claim up to `limit` due deliveries, at most one per contact, never a contact that already
    has a claimed delivery (so a contact's messages go out in order).

    On PostgreSQL the claims of all workers take turns on one transaction-level advisory lock:
    `SKIP LOCKED` locks rows, not contacts, so two claimers running at once could each take a
    different row of one contact. In turn, each claim's statements see the claims committed
    before it (READ COMMITTED takes a snapshot per statement). A claim is a few milliseconds.

    Page send leases (DESIGN section 8): rows that may go out on Messenger (their contact has an
    identity on the row's Page) are left alone while another worker holds that Page's lease, and
    claiming them takes or renews it for `page_lease` (default: the claim lease). Claims take
    turns, so two workers never both take one Page's lease; only the holder sends for a Page,
    and the Page's per-second budget holds however many run. A claim takes at most one Page's
    lease that it does not hold yet, so the Pages spread over the workers. Rows that cannot go
    out on Messenger (email, or a skip) need no Page lease: any worker may take them."""
    table = table_of(Delivery)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(CLAIM_LOCK_KEY)))
    busy = sa.select(table.c.contact_id).where(
        table.c.state == State.CLAIMED.value, table.c.lease_expires_at >= now
    )
    campaigns = table_of(Campaign)
    pages = table_of(Page)
    # A paused campaign or Page keeps its rows pending: resuming picks them up where they were.
    paused_campaigns = sa.select(campaigns.c.id).where(campaigns.c.status == "paused")
    paused_pages = sa.select(pages.c.page_id).where(pages.c.paused_at.is_not(None))
    leases = table_of(SendLease)
    leased_elsewhere = sa.select(leases.c.key).where(
        leases.c.owner != worker_id, leases.c.expires_at > now
    )
    identities = table_of(MessengerIdentity)
    on_messenger = (
        sa.select(identities.c.id)
        .where(
            identities.c.contact_id == table.c.contact_id,
            identities.c.page_id == table.c.page_id,
        )
        .exists()
    )
    candidates = (
        sa.select(
            table.c.id, table.c.contact_id, table.c.page_id, on_messenger.label("on_messenger")
        )
        .where(
            table.c.state == State.PENDING.value,
            table.c.due_at <= now,
            sa.or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= now),
            table.c.contact_id.not_in(busy),
            sa.or_(table.c.campaign_id.is_(None), table.c.campaign_id.not_in(paused_campaigns)),
            sa.or_(table.c.page_id.is_(None), table.c.page_id.not_in(paused_pages)),
            sa.or_(
                table.c.page_id.is_(None),
                (PAGE_LEASE_PREFIX + table.c.page_id).not_in(leased_elsewhere),
                ~on_messenger,
            ),
        )
        .order_by(table.c.due_at, table.c.id)
        .limit(limit * 4)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    held = set(
        (
            await session.execute(
                sa.select(leases.c.key).where(
                    leases.c.owner == worker_id, leases.c.expires_at > now
                )
            )
        ).scalars()
    )
    chosen: dict[str, str] = {}
    page_ids: set[str] = set()
    new_page: str | None = None
    for row in (await session.execute(candidates)).all():
        if row.contact_id in chosen:
            continue
        if row.page_id is not None and row.on_messenger:
            if PAGE_LEASE_PREFIX + row.page_id not in held:
                if new_page is None:
                    new_page = row.page_id
                elif row.page_id != new_page:
                    continue  # another Page this claim does not hold: for another worker
            page_ids.add(row.page_id)
        chosen[row.contact_id] = row.id
        if len(chosen) >= limit:
            break
    if not chosen:
        return []
    for page_id in sorted(page_ids):
        await _hold_page_lease(
            session, page_id, worker_id=worker_id, until=now + (page_lease or lease)
        )
    claimed = await session.execute(
        sa.update(table)
        .where(table.c.id.in_(list(chosen.values())), table.c.state == State.PENDING.value)
        .values(
            state=transition(State.PENDING, Event.CLAIM).value,
            lease_owner=worker_id,
            lease_expires_at=now + lease,
            updated_at=now,
        )
        .returning(table.c.id)
    )
    return [row.id for row in claimed.all()]


async def _hold_page_lease(
    session: AsyncSession, page_id: str, *, worker_id: str, until: datetime
) -> None:
    """Take or renew a Page's send lease. The claim that calls this excluded Pages leased by
    live workers, and claims take turns, so the row is free, expired or already ours."""
    table = table_of(SendLease)
    key = PAGE_LEASE_PREFIX + page_id
    renewed = await session.execute(
        sa.update(table).where(table.c.key == key).values(owner=worker_id, expires_at=until)
    )
    if not rows_affected(renewed):
        await session.execute(
            insert_ignoring_conflicts(session, table, ["key"]).values(
                key=key, owner=worker_id, expires_at=until
            )
        )


@dataclass(frozen=True)
class _Plan:
    """What to send, read in one short transaction and used outside it."""

    delivery_id: str
    kind: str
    outcome: Outcome | None
    page_id: str | None = None
    access_token: str | None = None
    graph_api_version: str | None = None
    body: dict[str, Any] | None = None
    context: SendContext | None = None
    decision: Decision | None = None
    identity_id: str | None = None
    token_id: str | None = None
    attempts: int = 0
    email_message: bytes | None = None
    email_sender: str | None = None
    email_to: str | None = None
    email_reason: str | None = None
    campaign_id: str | None = None
    run_id: str | None = None
    step_index: int | None = None
    contact_id: str | None = None
    throttle: int | None = None


async def _plan(
    session: AsyncSession,
    keyring: KeyRing,
    delivery: Delivery,
    *,
    now: datetime,
    settings: DispatchSettings,
    facts: reachability.ContactFacts | None = None,
) -> _Plan:
    if delivery.kind in capture_sending.KINDS:
        # Capture's one-offs: the double opt-in email and a comment's private reply.
        return await capture_sending.plan(session, keyring, delivery, now=now, settings=settings)
    campaign = await _campaign_of(session, delivery)
    content = _content(delivery, campaign)
    spec = ONE_OFF_SPECS.get(delivery.kind) or _step_spec(delivery, content)
    if spec is None:
        return _Plan(
            delivery.id, delivery.kind, Outcome(State.FAILED, Reason.FAILED_CHANNEL_MISCONFIGURED)
        )
    if facts is None:
        facts = await reachability.load_facts(
            session,
            workspace_id=delivery.workspace_id,
            contact_id=delivery.contact_id,
            page_id=delivery.page_id or "",
        )
    page = facts.pages.get(delivery.page_id or "")
    identity = next((i for i in facts.identities if i.page_id == delivery.page_id), None)
    if delivery.kind == "optin_request":
        spec = MessageSpec(purpose=spec.purpose, topic=delivery.topic, fallback=spec.fallback)
    context = reachability.send_context(
        facts, page_id=delivery.page_id, message=spec, now=now, quiet=settings.takeover_quiet
    )
    if campaign is not None:
        context = await campaign_steps.campaign_context(
            session,
            context,
            spec=campaign_runs.spec_of(campaign),
            cancelled=campaign.status == "cancelled",
            contact=facts.contact,
            now=now,
            exclude_delivery_id=delivery.id,
        )
    decision = campaign_steps.decide_step(context, content) if campaign else decide(context)
    if delivery.kind == "step" and decision.route is Route.EMAIL:
        return _email_plan(
            delivery,
            content,
            facts,
            page,
            decision.reason.value,
            keyring=keyring,
            now=now,
            settings=settings,
        )
    if decision.route is Route.NONE and delivery.kind == "step":
        return _Plan(delivery.id, delivery.kind, _parked(decision, delivery, content, now=now))
    if decision.route is not Route.MESSENGER or page is None or identity is None:
        # One-off kinds are Messenger messages; anything else means they cannot go now.
        reason = (
            decision.reason if decision.route is Route.NONE else Reason.SKIPPED_NO_REACHABLE_CHANNEL
        )
        state = State.FAILED if reason.value.startswith("failed.") else State.SKIPPED
        return _Plan(delivery.id, delivery.kind, Outcome(state, reason.value))
    message: dict[str, Any] = {}
    if delivery.kind == "step":
        step_messenger = content.get("messenger") or {}
        try:
            message["text"] = rendering.render_messenger_text(
                str(step_messenger.get("text", "")),
                outbound_email.template_context(
                    facts.contact, facts.email, page, None, content.get("campaign_name")
                ),
            )
        except rendering.RenderError as exc:
            return _Plan(
                delivery.id,
                delivery.kind,
                Outcome(State.FAILED, Reason.FAILED_RENDER.value, error={"message": str(exc)}),
            )
        if step_messenger.get("quick_replies"):
            message["quick_replies"] = step_messenger["quick_replies"]
        if step_messenger.get("buttons"):
            # Reference section 2: buttons travel in a button template, whose text is the message.
            message = {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "text": message["text"],
                        "buttons": step_messenger["buttons"],
                    },
                }
            }
    if "text" in content:
        message["text"] = content["text"]
    if content.get("quick_replies"):
        message["quick_replies"] = content["quick_replies"]
    if content.get("attachment"):
        message["attachment"] = content["attachment"]
    recipient = Recipient.psid(identity.psid)
    messaging_type = (
        SendMessagingType(decision.messaging_type.value) if decision.messaging_type else None
    )
    if decision.token_id is not None:
        # Reference 3.1 [T5]: a one-time token is the recipient, and the send has no type.
        token = next(t for t in facts.tokens[identity.id] if t.id == decision.token_id)
        recipient = Recipient.one_time_notif_token(
            keyring.decrypt(token.token_enc, context=f"optin_token:{identity.id}")
        )
        messaging_type = None
    try:
        body = build_send_request(
            recipient,
            message,
            messaging_type=messaging_type,
            tag=decision.tag,
            metadata=delivery.id,
        )
    except ValueError as exc:
        return _Plan(
            delivery.id,
            delivery.kind,
            Outcome(State.FAILED, Reason.FAILED_RENDER.value, error={"message": str(exc)}),
        )
    return _Plan(
        delivery_id=delivery.id,
        kind=delivery.kind,
        outcome=None,
        page_id=page.page_id,
        access_token=open_token(keyring, page),
        graph_api_version=page.graph_api_version,
        body=body,
        context=context,
        decision=decision,
        identity_id=identity.id,
        token_id=decision.token_id,
        attempts=delivery.attempts,
    )


def _content(delivery: Delivery, campaign: Campaign | None) -> dict[str, Any]:
    """A one-off's content is on its row; a campaign step's comes from the campaign's spec, with
    the row's own marks (`fallback_now`) on top."""
    content = dict(delivery.content or {})
    if campaign is None or delivery.step_index is None:
        return content
    step = campaign_steps.content_of(campaign_runs.spec_of(campaign), delivery.step_index)
    return {**step, **content}


async def _campaign_of(session: AsyncSession, delivery: Delivery) -> Campaign | None:
    if delivery.kind != "step" or delivery.campaign_id is None or delivery.step_index is None:
        return None
    return await session.get(Campaign, delivery.campaign_id)


def _step_spec(delivery: Delivery, content: dict[str, Any]) -> MessageSpec | None:
    """A `step` delivery carries its step: purpose, topic, fallback, and what to send on each
    channel (`messenger.text`, `email.subject/html/text/buttons`)."""
    if delivery.kind != "step":
        return None
    try:
        return MessageSpec(
            purpose=Purpose(content.get("purpose", delivery.purpose)),
            topic=delivery.topic,
            fallback=Fallback(content.get("fallback", "email")),
            hold_deadline=delivery.held_until,
        )
    except ValueError:
        return None


def _parked(
    decision: Decision, delivery: Delivery, content: dict[str, Any], *, now: datetime
) -> Outcome:
    reason = decision.reason
    if reason is Reason.HELD_UNTIL_WINDOW:
        wait = content.get("max_wait_seconds")
        until = delivery.held_until or (now + timedelta(seconds=int(wait)) if wait else None)
        return Outcome(State.HELD, reason.value, held_until=until)
    if reason is Reason.DEFERRED_SEND_WINDOW:
        return Outcome(State.DEFERRED, reason.value, next_attempt_at=decision.due_at)
    state = State.FAILED if reason.value.startswith("failed.") else State.SKIPPED
    return Outcome(state, reason.value)


def _email_plan(
    delivery: Delivery,
    content: dict[str, Any],
    facts: reachability.ContactFacts,
    page: Page | None,
    reason: str,
    *,
    keyring: KeyRing,
    now: datetime,
    settings: DispatchSettings,
) -> _Plan:
    if facts.email is None or settings.email is None:
        return _Plan(
            delivery.id,
            delivery.kind,
            Outcome(State.FAILED, Reason.FAILED_CHANNEL_MISCONFIGURED.value),
        )
    link_urls = outbound_email.fallback_links(
        keyring,
        public_url=settings.email.public_url,
        workspace_id=delivery.workspace_id,
        contact_id=delivery.contact_id,
        page_id=page.page_id if page else None,
        email_identity_id=facts.email.id,
        delivery_id=delivery.id,
        now=now,
    )
    try:
        message, sender = outbound_email.compose(
            step_email=dict(content.get("email") or {}),
            context=outbound_email.template_context(
                facts.contact, facts.email, page, link_urls, content.get("campaign_name")
            ),
            workspace=facts.workspace,
            default_from=settings.email.default_from,
            to_address=facts.email.address,
            delivery_id=delivery.id,
            unsubscribe_mailto=settings.email.unsubscribe_mailto,
            now=now,
        )
    except (rendering.RenderError, MessageInvalid) as exc:
        return _Plan(
            delivery.id,
            delivery.kind,
            Outcome(State.FAILED, Reason.FAILED_RENDER.value, error={"message": str(exc)[:500]}),
        )
    return _Plan(
        delivery_id=delivery.id,
        kind=delivery.kind,
        outcome=None,
        attempts=delivery.attempts,
        email_message=message,
        email_sender=sender,
        email_to=facts.email.address,
        email_reason=reason,
    )


def _error_record(exc: MessengerError) -> dict[str, Any]:
    """The parsed provider error; never a URL or a token (DESIGN section 4)."""
    return {
        "class": exc.error_class.value,
        "type": type(exc).__name__,
        "code": exc.code,
        "subcode": exc.subcode,
        "message": exc.message,
        "fbtrace_id": exc.fbtrace_id,
        "http_status": exc.http_status,
    }


def _after_failure(
    plan: _Plan, exc: MessengerError, *, now: datetime, settings: DispatchSettings
) -> Outcome:
    error = _error_record(exc)
    cls = exc.error_class
    if cls.reroutes:
        assert plan.context is not None
        failure = (
            MessengerFailure.WINDOW_CLOSED
            if cls is ErrorClass.WINDOW_CLOSED
            else MessengerFailure.RECIPIENT_UNAVAILABLE
        )
        fallback = decide_after_messenger_failure(plan.context, failure)
        state = State.SKIPPED if fallback.route is Route.NONE else State.FAILED
        return Outcome(state, fallback.reason.value, error=error)
    if cls.retryable or cls is ErrorClass.THREAD_OWNED_BY_ANOTHER_APP:
        attempt = plan.attempts + 1
        if attempt >= settings.max_attempts:
            return Outcome(State.FAILED, Reason.FAILED_RETRIES_EXHAUSTED.value, error=error)
        wait = settings.backoff(attempt)
        if exc.retry_after:
            wait = max(wait, timedelta(seconds=exc.retry_after))
        return Outcome(State.PENDING, "retry", error=error, next_attempt_at=now + wait)
    if cls.pauses_page:
        return Outcome(State.FAILED, Reason.FAILED_PAGE_PAUSED.value, error=error)
    if cls is ErrorClass.MALFORMED_REQUEST:
        return Outcome(State.FAILED, Reason.FAILED_RENDER.value, error=error)
    return Outcome(State.FAILED, Reason.FAILED_CHANNEL_MISCONFIGURED.value, error=error)


async def _record(
    session: AsyncSession,
    plan: _Plan,
    outcome: Outcome,
    *,
    worker_id: str,
    now: datetime,
    exc: MessengerError | None = None,
) -> bool:
    table = table_of(Delivery)
    event = {
        State.SENT: Event.SEND,
        State.SKIPPED: Event.SKIP,
        State.FAILED: Event.FAIL,
        State.PENDING: Event.RETRY,
        State.HELD: Event.HOLD,
        State.DEFERRED: Event.DEFER,
    }[outcome.state]
    target = transition(State.CLAIMED, event)
    values: dict[str, Any] = {
        "state": target.value,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
        "last_error": outcome.error,
    }
    if outcome.state is State.PENDING:
        values.update(next_attempt_at=outcome.next_attempt_at, attempts=plan.attempts + 1)
    else:
        values["reason"] = outcome.reason
        values["attempts"] = plan.attempts + (1 if plan.outcome is None else 0)
    if outcome.state is State.HELD:
        values["held_until"] = outcome.held_until
    if outcome.state is State.DEFERRED and outcome.next_attempt_at is not None:
        values["due_at"] = outcome.next_attempt_at
    if outcome.state is State.SENT and outcome.channel == "email":
        values.update(channel="email", sent_at=now, provider_message_id=outcome.provider_message_id)
    elif outcome.state is State.SENT:
        values.update(
            channel="messenger", sent_at=now, provider_message_id=outcome.provider_message_id
        )
        if plan.decision is not None:
            values.update(
                messaging_type=(
                    plan.decision.messaging_type.value if plan.decision.messaging_type else None
                ),
                tag=plan.decision.tag,
            )
    updated = await session.execute(
        sa.update(table)
        .where(
            table.c.id == plan.delivery_id,
            table.c.state == State.CLAIMED.value,
            table.c.lease_owner == worker_id,
        )
        .values(**values)
    )
    if not rows_affected(updated):
        # The lease expired and another worker took the row; it will record its own outcome.
        log.warning("lost the lease before recording", extra={"delivery_id": plan.delivery_id})
        return False
    if exc is not None:
        await _side_effects(session, plan, exc, now=now)
    if outcome.state in (State.SENT, State.SKIPPED, State.FAILED) and plan.campaign_id:
        assert plan.run_id and plan.step_index is not None and plan.contact_id
        await campaign_runs.plan_next_step(
            session,
            campaign_id=plan.campaign_id,
            run_id=plan.run_id,
            step_index=plan.step_index,
            contact_id=plan.contact_id,
            reason=outcome.reason,
            final_at=now,
            now=now,
        )
    if outcome.state is State.SENT and plan.token_id is not None:
        tokens = table_of(OptinToken)
        await session.execute(
            sa.update(tokens).where(tokens.c.id == plan.token_id).values(used_at=now)
        )
    return True


async def _side_effects(
    session: AsyncSession, plan: _Plan, exc: MessengerError, *, now: datetime
) -> None:
    cls = exc.error_class
    if cls is ErrorClass.RECIPIENT_UNAVAILABLE and plan.identity_id is not None:
        identities = table_of(MessengerIdentity)
        await session.execute(
            sa.update(identities)
            .where(identities.c.id == plan.identity_id)
            .values(unavailable_until=now + UNAVAILABLE_FOR)
        )
    if cls.pauses_page and plan.page_id is not None:
        pages = table_of(Page)
        await session.execute(
            sa.update(pages)
            .where(pages.c.page_id == plan.page_id, pages.c.paused_at.is_(None))
            .values(paused_at=now, paused_reason=f"{type(exc).__name__}: {exc.message}"[:200])
        )
    if cls.removes_token and plan.token_id is not None:
        tokens = table_of(OptinToken)
        await session.execute(sa.delete(tokens).where(tokens.c.id == plan.token_id))


@dataclass
class _Result:
    """A delivery's outcome, recorded with the rest of its batch."""

    plan: _Plan
    outcome: Outcome
    messenger_error: MessengerError | None = None
    email_failure: EmailError | None = None
    # Waiting for a paused relay is not an attempt.
    counts_attempt: bool = True


async def dispatch_once(
    sessions: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    messenger: MessengerClient,
    *,
    worker_id: str,
    clock: Callable[[], datetime],
    settings: DispatchSettings | None = None,
    email: SmtpSender | None = None,
) -> int:
    """One round: release expired leases, claim a batch, plan it, send, record. Returns how many
    were claimed.

    The batch is read in one short transaction (a few `IN` queries, not ten per delivery) and its
    outcomes are written in one; the provider calls happen between them, outside any
    transaction. A crash between a provider's acceptance and the write repeats at most this
    batch's sends (DESIGN section 8: at-least-once, bounded by the sends in flight)."""
    settings = settings or DispatchSettings()
    async with transaction(sessions) as session:
        await release_expired_leases(session, now=clock())
        await sweeps.release_due_deferred(session, now=clock())
        claimed = await claim_due(
            session,
            worker_id=worker_id,
            now=clock(),
            limit=settings.batch,
            lease=settings.lease,
        )
    if not claimed:
        return 0
    plans, email_paused = await _load_plans(
        sessions, keyring, claimed, now=clock(), settings=settings
    )
    gate = asyncio.Semaphore(settings.concurrency)
    results: list[_Result] = []

    async def one(plan: _Plan) -> None:
        # Every line logged while this delivery is sent names it, its campaign and contact.
        with log_context(
            delivery_id=plan.delivery_id, campaign_id=plan.campaign_id, contact_id=plan.contact_id
        ):
            async with gate:
                try:
                    result = await _send(
                        sessions,
                        keyring,
                        messenger,
                        plan,
                        clock=clock,
                        settings=settings,
                        email=email,
                        email_paused=email_paused,
                        limits=limits,
                    )
                except Exception as exc:
                    # Outside the channels' error trees (the database gone while a send budget
                    # is reserved): this delivery is retried, and the batch's other outcomes are
                    # still recorded instead of all of them being sent again after the lease.
                    log.exception("send failed", extra={"delivery_id": plan.delivery_id})
                    result = _Result(
                        plan, _after_unexpected(plan, exc, now=clock(), settings=settings)
                    )
                results.append(result)

    # Sends a budget would hold past half the claim lease go back to pending instead (see
    # _throttled): waiting longer could let the lease expire and another worker send them too.
    budgets = settings.budgets or _budgets_of(sessions)
    limits = _Limits(budgets, send_by=budgets.now() + settings.lease.total_seconds() / 2)
    await asyncio.gather(*(one(plan) for plan in plans))
    async with transaction(sessions) as session:
        # Strong references for the identity map (see _load_plans): planning the next steps
        # reads each campaign once per batch, not once per delivery.
        campaigns = await _campaigns(session, {r.plan.campaign_id for r in results})
        for result in results:
            await _record_result(session, keyring, result, worker_id=worker_id, now=clock())
        del campaigns
    return len(claimed)


async def dispatch_until_idle(
    sessions: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    messenger: MessengerClient,
    *,
    worker_id: str,
    clock: Callable[[], datetime],
    settings: DispatchSettings,
    email: SmtpSender | None = None,
    rounds: int = 2,
    budget: float = 10.0,
) -> int:
    """Rounds back to back while they claim full batches, `rounds` of them at once so one
    round's sends overlap another's reads and writes (claims never overlap: leases), for at most
    `budget` seconds. Returns how many deliveries were claimed."""
    deadline = time.monotonic() + budget
    claimed = 0

    async def loop() -> None:
        nonlocal claimed
        while True:
            count = await dispatch_once(
                sessions,
                keyring,
                messenger,
                worker_id=worker_id,
                clock=clock,
                settings=settings,
                email=email,
            )
            claimed += count
            if count < settings.batch or time.monotonic() >= deadline:
                return

    await asyncio.gather(*(loop() for _ in range(max(1, rounds))))
    return claimed


async def _send(
    sessions: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    messenger: MessengerClient,
    plan: _Plan,
    *,
    clock: Callable[[], datetime],
    settings: DispatchSettings,
    email: SmtpSender | None,
    email_paused: str | None,
    limits: _Limits,
) -> _Result:
    if plan.outcome is not None:
        return _Result(plan, plan.outcome)
    if plan.throttle is not None and plan.campaign_id is not None:
        key, budget = CAMPAIGN_BUDGET_PREFIX + plan.campaign_id, Budget(plan.throttle)
        if not await limits.budgets.acquire(key, budget, deadline=limits.send_by):
            return _Result(plan, _throttled(clock()), counts_attempt=False)
    if plan.email_message is not None:
        return await _send_email(
            plan, email, clock=clock, settings=settings, paused=email_paused, limits=limits
        )
    assert plan.page_id and plan.access_token and plan.graph_api_version and plan.body
    # A Page cooling down after a rate-limit answer (the client waits it out), or a batch past
    # its deadline: a send that could not start before half the claim lease is deferred.
    cooling = messenger.cooling_for(plan.page_id)
    if limits.budgets.now() + cooling > limits.send_by:
        return _Result(plan, _throttled(clock(), max(cooling, 1.0)), counts_attempt=False)
    try:
        receipt = await messenger.send_once(
            plan.page_id, plan.access_token, plan.graph_api_version, plan.body
        )
    except PageCooling as exc:
        # Never sent: due again when the Page's cool-down ends, and not an attempt.
        wait = max(exc.retry_after or 0.0, 1.0)
        return _Result(plan, _throttled(clock(), wait), counts_attempt=False)
    except MessengerError as exc:
        outcome = _after_failure(plan, exc, now=clock(), settings=settings)
        if exc.error_class.reroutes and outcome.reason.startswith("email."):
            # DESIGN section 5: window closed or recipient unavailable re-route the same
            # delivery to its fallback at once; the claim is kept and the email goes out under it.
            async with transaction(sessions) as session:
                await _side_effects(session, plan, exc, now=clock())
            return await _reroute_to_email(
                sessions,
                keyring,
                plan,
                outcome.reason,
                clock,
                settings,
                email,
                email_paused,
                limits,
            )
        if exc.maybe_delivered and outcome.state is State.PENDING:
            log.info(
                "send may have gone out; echoes are checked before the retry",
                extra={"delivery_id": plan.delivery_id},
            )
        return _Result(plan, outcome, messenger_error=exc)
    return _Result(plan, Outcome(State.SENT, _sent_reason(plan), "messenger", receipt.message_id))


async def _record_result(
    session: AsyncSession, keyring: KeyRing, result: _Result, *, worker_id: str, now: datetime
) -> None:
    plan, outcome, error = result.plan, result.outcome, result.messenger_error
    if error is not None and outcome.state is State.PENDING:
        echoed = await _echoed_mid(session, plan.delivery_id)
        if echoed is not None:
            # Meta accepted the timed-out send: its echo carried our delivery id.
            outcome = Outcome(State.SENT, _sent_reason(plan), "messenger", echoed)
            error = None
    if not result.counts_attempt:
        plan = replace(plan, attempts=plan.attempts - 1)
    await _record(session, plan, outcome, worker_id=worker_id, now=now, exc=error)
    failure = result.email_failure
    if failure is not None and failure.error_class.pauses_channel:
        await channel_pauses.pause(
            session,
            channel=channel_pauses.EMAIL,
            reason=f"{type(failure).__name__}: {failure}",
            now=now,
        )
    if failure is not None and failure.error_class.bounces and plan.email_to is not None:
        delivery = await session.get(Delivery, plan.delivery_id)
        assert delivery is not None
        await email_feedback.record_feedback(
            session,
            keyring,
            workspace_id=delivery.workspace_id,
            kind="bounce",
            address=plan.email_to,
            occurred_at=now,
            now=now,
        )


async def _load_plans(
    sessions: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    delivery_ids: list[str],
    *,
    now: datetime,
    settings: DispatchSettings,
) -> tuple[list[_Plan], str | None]:
    """Plan a claimed batch in one transaction: its rows, campaigns and contacts' facts are read
    with a few `IN` queries, then each delivery is planned from them. Also returns why email is
    paused, if it is (read once a batch, not once an email)."""
    async with transaction(sessions) as session:
        deliveries = list(
            (await session.execute(sa.select(Delivery).where(col(Delivery.id).in_(delivery_ids))))
            .scalars()
            .all()
        )
        # Held here for the whole batch: the session's identity map only keeps weak references,
        # and `session.get` below must find the campaigns there instead of reading them again.
        campaigns = await _campaigns(session, {d.campaign_id for d in deliveries})
        facts = await reachability.load_facts_many(
            session, [(d.workspace_id, d.contact_id, d.page_id) for d in deliveries]
        )
        plans = []
        for delivery in deliveries:
            plans.append(
                await _plan_one(
                    session,
                    keyring,
                    delivery,
                    facts.get((delivery.contact_id, delivery.page_id)),
                    now=now,
                    settings=settings,
                )
            )
        del campaigns
        email_paused = await channel_pauses.paused_reason(session, channel=channel_pauses.EMAIL)
        return plans, email_paused


async def _campaigns(session: AsyncSession, ids: set[str | None]) -> dict[str, Campaign]:
    wanted = {campaign_id for campaign_id in ids if campaign_id}
    if not wanted:
        return {}
    rows = await session.execute(sa.select(Campaign).where(col(Campaign.id).in_(wanted)))
    return {campaign.id: campaign for campaign in rows.scalars()}


async def _plan_one(
    session: AsyncSession,
    keyring: KeyRing,
    delivery: Delivery,
    facts: reachability.ContactFacts | None,
    *,
    now: datetime,
    settings: DispatchSettings,
) -> _Plan:
    try:
        plan = await _plan(session, keyring, delivery, now=now, settings=settings, facts=facts)
        return replace(
            plan,
            campaign_id=delivery.campaign_id,
            run_id=delivery.campaign_run_id,
            step_index=delivery.step_index,
            contact_id=delivery.contact_id,
            throttle=_throttle_of(await _campaign_of(session, delivery)),
        )
    except Exception as exc:
        log.exception("planning failed", extra={"delivery_id": delivery.id})
        return _Plan(
            delivery.id,
            delivery.kind,
            Outcome(State.FAILED, Reason.FAILED_RENDER.value, error={"message": str(exc)[:500]}),
            attempts=delivery.attempts,
        )


def _throttle_of(campaign: Campaign | None) -> int | None:
    if campaign is None:
        return None
    throttle = campaign_runs.spec_of(campaign).throttle
    return None if throttle is None else throttle.per_second


@dataclass(frozen=True)
class _Limits:
    """The global budgets a batch's sends take from, and the wall-clock time after which a send
    must not start waiting on them any more."""

    budgets: SendBudgets
    send_by: float


def _throttled(now: datetime, seconds: float = 1.0) -> Outcome:
    """A send that could not start before the batch's deadline (a spent budget, a Page cooling
    down): pending again, not an attempt, due when it could start."""
    return Outcome(
        State.PENDING,
        "retry",
        error={"message": "throttled: waiting for the send budget or the Page's cool-down"},
        next_attempt_at=now + timedelta(seconds=seconds),
    )


# When the caller brings no global budgets: one set per session factory, so the limits hold
# within this process.
_DEFAULT_BUDGETS: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], SendBudgets] = (
    weakref.WeakKeyDictionary()
)


def _budgets_of(sessions: async_sessionmaker[AsyncSession]) -> SendBudgets:
    budgets = _DEFAULT_BUDGETS.get(sessions)
    if budgets is None:
        budgets = _DEFAULT_BUDGETS[sessions] = SendBudgets(sessions)
    return budgets


async def _reroute_to_email(
    sessions: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    claimed: _Plan,
    reason: str,
    clock: Callable[[], datetime],
    settings: DispatchSettings,
    email: SmtpSender | None,
    email_paused: str | None,
    limits: _Limits,
) -> _Result:
    async with transaction(sessions) as session:
        delivery = await session.get(Delivery, claimed.delivery_id)
        assert delivery is not None
        facts = await reachability.load_facts(
            session,
            workspace_id=delivery.workspace_id,
            contact_id=delivery.contact_id,
            page_id=delivery.page_id or "",
        )
        page = facts.pages.get(delivery.page_id or "")
        content = _content(delivery, await _campaign_of(session, delivery))
        email_plan = _email_plan(
            delivery, content, facts, page, reason, keyring=keyring, now=clock(), settings=settings
        )
    # The campaign fields ride along, so the next step is planned when the email's outcome is.
    plan = replace(
        email_plan,
        campaign_id=claimed.campaign_id,
        run_id=claimed.run_id,
        step_index=claimed.step_index,
        contact_id=claimed.contact_id,
    )
    if plan.outcome is not None:
        return _Result(plan, plan.outcome)
    return await _send_email(
        plan, email, clock=clock, settings=settings, paused=email_paused, limits=limits
    )


async def _send_email(
    plan: _Plan,
    email: SmtpSender | None,
    *,
    clock: Callable[[], datetime],
    settings: DispatchSettings,
    paused: str | None,
    limits: _Limits,
) -> _Result:
    assert plan.email_message is not None
    assert plan.email_sender is not None
    assert plan.email_to is not None
    assert plan.email_reason is not None
    if paused is not None:
        # The relay is paused: wait (not an attempt, see _record_result), look again later.
        outcome = Outcome(
            State.PENDING,
            "retry",
            error={"message": f"email paused: {paused}"},
            next_attempt_at=clock() + settings.backoff_cap,
        )
        return _Result(plan, outcome, counts_attempt=False)
    if email is None:
        return _Result(plan, Outcome(State.FAILED, Reason.FAILED_CHANNEL_MISCONFIGURED.value))
    relay = settings.email
    if relay is not None and relay.relay_budget is not None:
        acquired = await limits.budgets.acquire(
            relay.relay_key, relay.relay_budget, deadline=limits.send_by
        )
        if not acquired:
            return _Result(plan, _throttled(clock()), counts_attempt=False)
    try:
        await email.send(plan.email_message, sender=plan.email_sender, recipients=[plan.email_to])
    except EmailError as exc:
        return _Result(
            plan, _after_email_failure(plan, exc, now=clock(), settings=settings), email_failure=exc
        )
    return _Result(
        plan, Outcome(State.SENT, plan.email_reason, "email", _message_id(plan.email_message))
    )


def _message_id(message: bytes) -> str | None:
    for line in message.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
        if not line:
            break
    return None


def _after_unexpected(
    plan: _Plan, exc: Exception, *, now: datetime, settings: DispatchSettings
) -> Outcome:
    error = {"message": f"{type(exc).__name__}: {exc}"[:500]}
    attempt = plan.attempts + 1
    if attempt >= settings.max_attempts:
        return Outcome(State.FAILED, Reason.FAILED_RETRIES_EXHAUSTED.value, error=error)
    return Outcome(
        State.PENDING, "retry", error=error, next_attempt_at=now + settings.backoff(attempt)
    )


def _after_email_failure(
    plan: _Plan, exc: EmailError, *, now: datetime, settings: DispatchSettings
) -> Outcome:
    error = exc.as_dict()
    if exc.error_class.retryable:
        attempt = plan.attempts + 1
        if attempt >= settings.max_attempts:
            return Outcome(State.FAILED, Reason.FAILED_RETRIES_EXHAUSTED.value, error=error)
        return Outcome(
            State.PENDING, "retry", error=error, next_attempt_at=now + settings.backoff(attempt)
        )
    if exc.error_class.bounces:
        return Outcome(State.SKIPPED, Reason.SKIPPED_BOUNCED.value, error=error)
    if exc.error_class.pauses_channel:
        return Outcome(State.FAILED, Reason.FAILED_CHANNEL_MISCONFIGURED.value, error=error)
    return Outcome(State.FAILED, Reason.FAILED_RENDER.value, error=error)


def _sent_reason(plan: _Plan) -> str:
    assert plan.decision is not None
    return plan.decision.reason.value


async def _echoed_mid(session: AsyncSession, delivery_id: str) -> str | None:
    table = table_of(Delivery)
    return (
        await session.execute(
            sa.select(table.c.provider_message_id).where(table.c.id == delivery_id)
        )
    ).scalar_one_or_none()
