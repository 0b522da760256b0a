"""Applying the webhook inbox: the window, identities, tokens and takeovers from inbound events.

A job reads pending inbox rows in event-time order and applies each in a savepoint of its own, so
one bad event never blocks the others. State only moves forward in time: every timestamp column is
set to the later of what it holds and the event's time, and token stop/resume compares the time of
the last change, so replays and late duplicates change nothing (DESIGN section 8).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orchestrator import contacts, reopen
from orchestrator.addresses import AddressInvalid, normalize_address
from orchestrator.campaigns import triggers
from orchestrator.capture import comments
from orchestrator.crypto import KeyRing
from orchestrator.ids import new_id
from orchestrator.models import (
    Contact,
    Delivery,
    EmailIdentity,
    InteractionEvent,
    MessengerIdentity,
    OptinToken,
    WebhookInbox,
    table_of,
)

log = logging.getLogger(__name__)

# Reference 4.5: app id 263902037430900 is the Page inbox / Meta Business Suite; any echo from an
# app that is not ours means a person on the Page wrote to the contact.
PAGE_INBOX_APP_ID = "263902037430900"
# Reference 3.1 [S18]: a one-time notification token expires within one year of the opt-in.
ONE_TIME_TOKEN_LIFETIME = timedelta(days=365)
# Reference 1 [S2]: these inbound events open or refresh the 24-hour window. Opt-ins do not
# (reference 1, [S20]); echoes, deliveries and reads never do (reference 9).
WINDOW_OPENING = frozenset(
    {"messages", "messaging_postbacks", "messaging_referrals", "message_reactions"}
)
_STOP = re.compile(r"^STOP[ _]NOTIFICATIONS$", re.IGNORECASE)
_RESUME = re.compile(r"^RESUME[ _]NOTIFICATIONS$", re.IGNORECASE)


@dataclass
class _Row:
    id: str
    workspace_id: str
    app_id: str
    page_id: str
    event_type: str
    event_time: datetime
    payload: dict[str, Any]


def _later(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


def _psid_of(payload: dict[str, Any], *, echo: bool) -> str | None:
    # Reference 4.5: in an echo the Page is the sender and the person the recipient.
    party = payload.get("recipient" if echo else "sender")
    if isinstance(party, dict) and party.get("id") is not None:
        return str(party["id"])
    return None


async def apply_pending(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    now: datetime,
    limit: int = 200,
) -> int:
    """Apply up to `limit` pending inbox rows in event-time order; returns how many were handled.

    One call is one transaction: on SQLite it holds the write lock, and webhook acknowledgements
    wait behind it, so the batch stays small enough to keep them well under Meta's 5 seconds.
    """
    inbox = table_of(WebhookInbox)
    query = (
        sa.select(inbox)
        .where(inbox.c.status == "pending")
        .order_by(inbox.c.event_time, inbox.c.received_at, inbox.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Several workers may run this job; each takes rows the others have not locked.
        query = query.with_for_update(skip_locked=True)
    rows = (await session.execute(query)).all()
    for raw in rows:
        row = _Row(
            id=raw.id,
            workspace_id=raw.workspace_id,
            app_id=raw.app_id,
            page_id=raw.page_id,
            event_type=raw.event_type,
            event_time=raw.event_time,
            payload=json.loads(raw.payload),
        )
        status, error = "applied", None
        try:
            async with session.begin_nested():
                handled = await _apply(session, keyring, row, now=now)
                if not handled:
                    status = "ignored"
        except Exception as exc:  # one bad event must not block the inbox
            log.exception("webhook event failed", extra={"inbox_id": row.id})
            status, error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        await session.execute(
            sa.update(inbox)
            .where(inbox.c.id == row.id)
            .values(status=status, error=error, applied_at=now)
        )
    return len(rows)


async def _apply(session: AsyncSession, keyring: KeyRing, row: _Row, *, now: datetime) -> bool:
    kind = row.event_type
    if kind == "feed":
        return await _apply_comment(session, row, now=now)
    echo = kind == "message_echoes"
    psid = _psid_of(row.payload, echo=echo)
    if psid is None or kind.startswith(("unknown", "standby")):
        return False
    identity, created = await _identity(session, row, psid, now=now)
    data: dict[str, Any] = {}
    if kind in WINDOW_OPENING:
        identity.window_opened_at = _later(identity.window_opened_at, row.event_time)
        identity.unavailable_until = None
    identity.last_event_at = _later(identity.last_event_at, row.event_time)
    if kind == "messages":
        data = await _apply_message(session, keyring, row, identity, now=now)
    elif kind == "message_echoes":
        data = await _apply_echo(session, row, identity)
        await comments.on_echo(
            session, identity=identity, delivery_id=data.get("delivery_id"), now=now
        )
    elif kind in ("messaging_postbacks", "messaging_referrals"):
        data = _referral_data(row.payload)
    elif kind == "messaging_optins":
        data = await _apply_optin(session, keyring, row, identity, now=now)
    elif kind in ("message_deliveries", "message_reads"):
        data = await _apply_receipt(session, row, identity)
    elif kind == "message_reactions":
        data = dict(row.payload.get("reaction") or {})
    elif kind == "messaging_handovers" and "pass_thread_control" in row.payload:
        identity.takeover_released_at = _later(identity.takeover_released_at, row.event_time)
    identity.updated_at = now
    has_our_ref = False
    if kind in ("messaging_postbacks", "messaging_referrals") and isinstance(data.get("ref"), str):
        await session.flush()
        has_our_ref = await reopen.on_ref(
            session,
            keyring,
            identity=identity,
            token=data["ref"],
            at=row.event_time,
            now=now,
            request_email=True,
        )
    if created and kind in ("messages", "messaging_postbacks") and not has_our_ref:
        await reopen.ask_for_email(session, identity, now=now)
    if kind in WINDOW_OPENING:
        # After the ref: a binding may have moved the identity to the contact the ref names.
        await session.flush()
        await reopen.on_window_opened(session, identity=identity, now=now)
    if created and kind in ("messages", "messaging_postbacks"):
        await session.flush()
        await triggers.fire_first_message(
            session,
            workspace_id=row.workspace_id,
            page_id=row.page_id,
            contact_id=identity.contact_id,
            event_id=row.id,
            now=now,
        )
    session.add(
        InteractionEvent(
            id=new_id("ev"),
            workspace_id=row.workspace_id,
            contact_id=identity.contact_id,
            page_id=row.page_id,
            psid=psid,
            type=_event_name(kind),
            data=data,
            occurred_at=row.event_time,
            created_at=now,
        )
    )
    await session.flush()
    return True


def _event_name(kind: str) -> str:
    return {
        "messages": "message",
        "message_echoes": "echo",
        "messaging_postbacks": "postback",
        "messaging_referrals": "referral",
        "messaging_optins": "optin",
        "message_reactions": "reaction",
        "message_deliveries": "delivery",
        "message_reads": "read",
        "messaging_handovers": "handover",
    }.get(kind, kind)


async def _identity(
    session: AsyncSession, row: _Row, psid: str, *, now: datetime
) -> tuple[MessengerIdentity, bool]:
    found = (
        await session.execute(
            sa.select(MessengerIdentity).where(
                col(MessengerIdentity.page_id) == row.page_id, col(MessengerIdentity.psid) == psid
            )
        )
    ).scalar_one_or_none()
    if found is not None:
        return found, False
    contact = Contact(
        id=new_id("ct"), workspace_id=row.workspace_id, created_at=now, updated_at=now
    )
    session.add(contact)
    identity = MessengerIdentity(
        id=new_id("mi"),
        workspace_id=row.workspace_id,
        contact_id=contact.id,
        page_id=row.page_id,
        psid=psid,
        created_at=now,
        updated_at=now,
    )
    session.add(identity)
    await session.flush()
    return identity, True


async def _apply_message(
    session: AsyncSession,
    keyring: KeyRing,
    row: _Row,
    identity: MessengerIdentity,
    *,
    now: datetime,
) -> dict[str, Any]:
    identity.last_user_message_at = _later(identity.last_user_message_at, row.event_time)
    message = row.payload.get("message") or {}
    data: dict[str, Any] = {"mid": message.get("mid")}
    if message.get("text") is not None:
        data["text"] = message["text"]
    if message.get("attachments"):
        data["attachments"] = [
            {"type": a.get("type")} for a in message["attachments"] if isinstance(a, dict)
        ]
    quick_reply = message.get("quick_reply")
    if isinstance(quick_reply, dict):
        data["quick_reply"] = quick_reply.get("payload")
        await _maybe_email_from_quick_reply(
            session, keyring, row, identity, quick_reply.get("payload"), now=now
        )
    referral = message.get("referral")
    if isinstance(referral, dict):
        data["referral"] = {k: referral.get(k) for k in ("ref", "source", "type", "ad_id")}
    return data


async def _maybe_email_from_quick_reply(
    session: AsyncSession,
    keyring: KeyRing,
    row: _Row,
    identity: MessengerIdentity,
    payload: Any,
    *,
    now: datetime,
) -> None:
    """A `user_email` quick reply carries the address Meta has for the person (reference 2): it
    proves the address belongs to this PSID, so it attaches (with a consent record), or, when the
    address is another contact's, joins the two contacts (DESIGN section 6)."""
    if not isinstance(payload, str) or "@" not in payload:
        return
    try:
        address = normalize_address(payload)
    except AddressInvalid:
        return
    source = await comments.consent_source(
        session, contact_id=identity.contact_id, page_id=row.page_id
    )
    consent = contacts.Consent(source=source, at=row.event_time)
    owner = (
        await session.execute(
            sa.select(col(EmailIdentity.contact_id)).where(
                col(EmailIdentity.workspace_id) == row.workspace_id,
                col(EmailIdentity.address) == address,
            )
        )
    ).scalar_one_or_none()
    if owner is not None and owner != identity.contact_id:
        await contacts.merge_contacts(
            session,
            workspace_id=row.workspace_id,
            contact_id=owner,
            other_id=identity.contact_id,
            now=now,
        )
        await session.refresh(identity)
    current = (
        (
            await session.execute(
                sa.select(EmailIdentity).where(col(EmailIdentity.contact_id) == identity.contact_id)
            )
        )
        .scalars()
        .all()
    )
    if current and all(e.address != address for e in current):
        # The contact already has another address: keep it, record the tapped one as seen.
        return
    await contacts.save_contact(
        session,
        keyring,
        workspace_id=row.workspace_id,
        data=contacts.ContactData(
            email=address,
            messenger=contacts.MessengerRef(row.page_id, identity.psid),
            consent=consent,
            source=source,
        ),
        now=now,
    )


async def _apply_echo(
    session: AsyncSession, row: _Row, identity: MessengerIdentity
) -> dict[str, Any]:
    message = row.payload.get("message") or {}
    echo_app = str(message.get("app_id")) if message.get("app_id") is not None else None
    data: dict[str, Any] = {"mid": message.get("mid"), "app_id": echo_app}
    if echo_app is not None and echo_app != row.app_id:
        # Reference 4.5 and DESIGN section 6: a person replied from the Page inbox (or another
        # app wrote); automated sends to this contact stop until handed back or quiet.
        identity.takeover_at = _later(identity.takeover_at, row.event_time)
        data["takeover"] = True
        return data
    delivery_id = message.get("metadata")
    if isinstance(delivery_id, str) and delivery_id.startswith("dl_"):
        data["delivery_id"] = delivery_id
        deliveries = table_of(Delivery)
        await session.execute(
            sa.update(deliveries)
            .where(
                deliveries.c.id == delivery_id,
                deliveries.c.workspace_id == row.workspace_id,
                deliveries.c.provider_message_id.is_(None),
            )
            .values(provider_message_id=message.get("mid"))
        )
    return data


def _referral_data(payload: dict[str, Any]) -> dict[str, Any]:
    postback = payload.get("postback") if isinstance(payload.get("postback"), dict) else None
    referral = payload.get("referral")
    if postback is not None:
        referral = postback.get("referral")
    data: dict[str, Any] = {}
    if postback is not None:
        data["payload"] = postback.get("payload")
        data["title"] = postback.get("title")
    if isinstance(referral, dict):
        data.update({k: referral.get(k) for k in ("ref", "source", "type", "ad_id")})
    return data


async def _apply_optin(
    session: AsyncSession,
    keyring: KeyRing,
    row: _Row,
    identity: MessengerIdentity,
    *,
    now: datetime,
) -> dict[str, Any]:
    optin = row.payload.get("optin") or {}
    kind = optin.get("type")
    data: dict[str, Any] = {"type": kind, "payload": optin.get("payload")}
    if kind == "one_time_notif_req" and optin.get("one_time_notif_token"):
        await _store_token(
            session,
            keyring,
            row,
            identity,
            kind="one_time",
            topic=optin.get("payload"),
            token=str(optin["one_time_notif_token"]),
            expires_at=row.event_time + ONE_TIME_TOKEN_LIFETIME,
            now=now,
        )
    elif kind == "notification_messages" and optin.get("notification_messages_token"):
        token = str(optin["notification_messages_token"])
        status = str(optin.get("notification_messages_status") or "")
        data["status"] = status or None
        if _STOP.match(status) or _RESUME.match(status):
            await _token_status(
                session,
                keyring,
                token=token,
                stopped=bool(_STOP.match(status)),
                at=row.event_time,
            )
        else:
            expiry = optin.get("token_expiry_timestamp")
            await _store_token(
                session,
                keyring,
                row,
                identity,
                kind="recurring",
                topic=optin.get("payload") or optin.get("title"),
                token=token,
                expires_at=_ms(expiry) if expiry is not None else None,
                now=now,
            )
    return data


def _ms(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _token_hash(keyring: KeyRing, token: str) -> str:
    return keyring.keyed_hashes(token, purpose="optin-token")[0]


async def _store_token(
    session: AsyncSession,
    keyring: KeyRing,
    row: _Row,
    identity: MessengerIdentity,
    *,
    kind: str,
    topic: Any,
    token: str,
    expires_at: datetime | None,
    now: datetime,
) -> None:
    token_hash = _token_hash(keyring, token)
    tokens = table_of(OptinToken)
    exists = (
        await session.execute(sa.select(tokens.c.id).where(tokens.c.token_hash == token_hash))
    ).first()
    if exists is not None:
        return
    await session.execute(
        sa.insert(tokens).values(
            id=new_id("tk"),
            workspace_id=row.workspace_id,
            messenger_identity_id=identity.id,
            kind=kind,
            topic=str(topic)[:100] if topic is not None else None,
            token_enc=keyring.encrypt(token, context=f"optin_token:{identity.id}"),
            token_hash=token_hash,
            status="active",
            status_changed_at=row.event_time,
            expires_at=expires_at,
            created_at=now,
        )
    )


async def _token_status(
    session: AsyncSession, keyring: KeyRing, *, token: str, stopped: bool, at: datetime
) -> None:
    """Stop and resume move forward in time only: an older STOP never overrides a newer RESUME."""
    tokens = table_of(OptinToken)
    await session.execute(
        sa.update(tokens)
        .where(
            tokens.c.token_hash.in_(keyring.keyed_hashes(token, purpose="optin-token")),
            tokens.c.status_changed_at < at,
            tokens.c.status.in_(("active", "stopped")),
        )
        .values(status="stopped" if stopped else "active", status_changed_at=at)
    )


async def _apply_receipt(
    session: AsyncSession, row: _Row, identity: MessengerIdentity
) -> dict[str, Any]:
    """Reference 4.5: `watermark` means every message sent before it was delivered (or read);
    `mids` may be missing. Delivered and read are timestamps on deliveries, not states."""
    kind = "delivery" if row.event_type == "message_deliveries" else "read"
    inner = row.payload.get(kind) or {}
    watermark = _ms(inner.get("watermark"))
    mids = [m for m in inner.get("mids") or [] if isinstance(m, str)]
    column = "delivered_at" if kind == "delivery" else "read_at"
    deliveries = table_of(Delivery)
    conditions = [
        deliveries.c.workspace_id == row.workspace_id,
        deliveries.c.contact_id == identity.contact_id,
        deliveries.c.channel == "messenger",
        deliveries.c[column].is_(None),
    ]
    matches: list[sa.ColumnElement[bool]] = []
    if mids:
        matches.append(deliveries.c.provider_message_id.in_(mids))
    if watermark is not None:
        matches.append(
            sa.and_(deliveries.c.sent_at.is_not(None), deliveries.c.sent_at <= watermark)
        )
    if matches:
        await session.execute(
            sa.update(deliveries)
            .where(*conditions, sa.or_(*matches))
            .values({column: row.event_time})
        )
    return {"watermark": inner.get("watermark"), "mids": mids}


async def _apply_comment(session: AsyncSession, row: _Row, *, now: datetime) -> bool:
    """Reference 8: a comment allows one private reply within 7 days; it does not open the
    24-hour window (the conservative reading). Recorded for the capture flow to use."""
    value = row.payload.get("value") or {}
    if value.get("item") != "comment" or value.get("verb") != "add":
        return False
    author = value.get("from") or {}
    session.add(
        InteractionEvent(
            id=new_id("ev"),
            workspace_id=row.workspace_id,
            page_id=row.page_id,
            type="comment",
            data={
                "comment_id": value.get("comment_id"),
                "post_id": value.get("post_id"),
                "from_id": author.get("id"),
                "from_name": author.get("name"),
                "message": value.get("message"),
                "private_reply_until": (row.event_time + timedelta(days=7)).isoformat(),
            },
            occurred_at=row.event_time,
            created_at=now,
        )
    )
    await comments.on_comment(
        session,
        workspace_id=row.workspace_id,
        page_id=row.page_id,
        value=value,
        at=row.event_time,
        now=now,
    )
    return True
