"""How the dispatcher sends the two one-off kinds capture creates (DESIGN section 4: no provider
call without a delivery row). `dispatch._plan` hands these kinds here and sends the plan it gets
back like any other:

* `double_opt_in`: the confirmation email. The row holds what the confirm link needs (email
  identity, capture event); the link is signed here, at send time, so its 7 days count from the
  email. Never sent to an address that unsubscribed, bounced, complained or is suppressed.
* `private_reply`: the one private reply a Page comment allows (reference section 8), addressed
  to the comment, inviting the person to Messenger with a `user_email` quick reply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from channels.email import MessageInvalid, OutboundEmail, build_message_fast
from channels.messenger import PayloadInvalid, build_send_request
from channels.messenger.payloads import Recipient
from orchestrator import dispatch, links, outbound_email, reachability, rendering, suppression
from orchestrator.capture.tokens import ConfirmLink, make_confirm_token
from orchestrator.crypto import KeyRing
from orchestrator.delivery_states import State
from orchestrator.models import (
    Contact,
    Delivery,
    EmailIdentity,
    Page,
    Workspace,
)
from orchestrator.pages import open_token
from orchestrator.policy import (
    Decision,
    EmailState,
    Fallback,
    MessageSpec,
    Purpose,
    Reason,
    SendContext,
)

DOUBLE_OPT_IN = "double_opt_in"
PRIVATE_REPLY = "private_reply"
KINDS = frozenset({DOUBLE_OPT_IN, PRIVATE_REPLY})

_SKIPPED_BY_STATUS = {
    "unsubscribed": Reason.SKIPPED_UNSUBSCRIBED,
    "bounced": Reason.SKIPPED_BOUNCED,
    "complained": Reason.SKIPPED_COMPLAINED,
}


def _final(
    delivery: Delivery, reason: Reason, error: dict[str, Any] | None = None
) -> dispatch._Plan:
    state = State.FAILED if reason.value.startswith("failed.") else State.SKIPPED
    return dispatch._Plan(
        delivery.id,
        delivery.kind,
        dispatch.Outcome(state, reason.value, error=error),
        attempts=delivery.attempts,
    )


async def plan(
    session: AsyncSession,
    keyring: KeyRing,
    delivery: Delivery,
    *,
    now: datetime,
    settings: dispatch.DispatchSettings,
) -> dispatch._Plan:
    if delivery.kind == DOUBLE_OPT_IN:
        return await _double_opt_in(session, keyring, delivery, now=now, settings=settings)
    return await _private_reply(session, keyring, delivery, now=now)


async def _suppressed_reason(
    session: AsyncSession, keyring: KeyRing, identity: EmailIdentity
) -> Reason | None:
    reason = await suppression.suppressed_reason(
        session, keyring, workspace_id=identity.workspace_id, address=identity.address
    )
    if reason is None:
        return None
    # "erased" and "unsubscribed" both mean the person asked us to stop.
    return _SKIPPED_BY_STATUS.get(reason, Reason.SKIPPED_UNSUBSCRIBED)


async def _double_opt_in(
    session: AsyncSession,
    keyring: KeyRing,
    delivery: Delivery,
    *,
    now: datetime,
    settings: dispatch.DispatchSettings,
) -> dispatch._Plan:
    content = delivery.content or {}
    if settings.email is None:
        return _final(delivery, Reason.FAILED_CHANNEL_MISCONFIGURED)
    identity_id, event_id = content.get("email_identity_id"), content.get("capture_event_id")
    identity = (
        await session.get(EmailIdentity, identity_id) if isinstance(identity_id, str) else None
    )
    contact = await session.get(Contact, delivery.contact_id)
    workspace = await session.get(Workspace, delivery.workspace_id)
    if (
        identity is None
        or contact is None
        or workspace is None
        or identity.contact_id != delivery.contact_id
        or not isinstance(event_id, str)
    ):
        return _final(delivery, Reason.SKIPPED_NO_REACHABLE_CHANNEL)  # erased or merged away
    # The suppression list first: it keeps why (a complaint, a bounce) where the status of an
    # address that arrived suppressed only says "unsubscribed".
    blocked = await _suppressed_reason(session, keyring, identity) or _SKIPPED_BY_STATUS.get(
        identity.status
    )
    if blocked is not None:
        return _final(delivery, blocked)
    public_url = settings.email.public_url
    confirm = make_confirm_token(
        keyring,
        ConfirmLink(delivery.workspace_id, identity.id, event_id, delivery.id),
        now=now,
    )
    unsubscribe = links.make_unsubscribe_token(
        keyring,
        links.Unsubscribe(delivery.workspace_id, contact.id, identity.id, delivery.id),
        now=now,
    )
    sender, from_address = outbound_email.sender_of(workspace, settings.email.default_from)
    rendered = rendering.render_confirmation_email(
        confirm_url=links.public_url(public_url, "c", confirm),
        sender=sender,
        locale=content.get("locale") or contact.locale,
    )
    try:
        message = build_message_fast(
            OutboundEmail(
                from_address=from_address,
                from_name=sender.name,
                reply_to=workspace.reply_to,
                to_address=identity.address,
                to_name=contact.name,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                delivery_id=delivery.id,
                message_id_domain=from_address.rpartition("@")[2] or "localhost",
                # Not required for a confirmation, but one click here is how someone who never
                # signed up says "never again": the address is suppressed for every form.
                list_unsubscribe_url=links.public_url(public_url, "u", unsubscribe),
                list_unsubscribe_mailto=settings.email.unsubscribe_mailto,
            ),
            now=now,
        )
    except MessageInvalid as exc:
        return _final(delivery, Reason.FAILED_RENDER, {"message": str(exc)[:500]})
    return dispatch._Plan(
        delivery_id=delivery.id,
        kind=delivery.kind,
        outcome=None,
        attempts=delivery.attempts,
        email_message=message,
        email_sender=from_address,
        email_to=identity.address,
        # The closed list (policy/reasons.py) has no reason for a confirmation email; the closest
        # is `email.no_messenger`: an email that invites the person in, sent because no Messenger
        # identity is involved.
        email_reason=Reason.EMAIL_NO_MESSENGER.value,
    )


async def _private_reply(
    session: AsyncSession, keyring: KeyRing, delivery: Delivery, *, now: datetime
) -> dispatch._Plan:
    content = delivery.content or {}
    page = (
        await session.execute(
            sa.select(Page).where(
                col(Page.page_id) == (delivery.page_id or ""),
                col(Page.workspace_id) == delivery.workspace_id,
            )
        )
    ).scalar_one_or_none()
    comment_id, message, until = (
        content.get("comment_id"),
        content.get("message"),
        content.get("reply_until"),
    )
    if page is None:
        return _final(delivery, Reason.FAILED_CHANNEL_MISCONFIGURED)
    if not isinstance(comment_id, str) or not isinstance(message, dict):
        return _final(delivery, Reason.SKIPPED_NO_REACHABLE_CHANNEL)  # erased since
    if isinstance(until, str) and now >= datetime.fromisoformat(until):
        # Reference section 8: one private reply, within 7 days of the comment.
        return _final(delivery, Reason.SKIPPED_NO_REACHABLE_CHANNEL)
    try:
        # Reference section 8 [S17]: the recipient is the comment; no messaging_type is needed.
        body = build_send_request(Recipient.comment(comment_id), message, metadata=delivery.id)
    except PayloadInvalid as exc:
        return _final(delivery, Reason.FAILED_RENDER, {"message": str(exc)[:500]})
    return dispatch._Plan(
        delivery_id=delivery.id,
        kind=delivery.kind,
        outcome=None,
        page_id=page.page_id,
        access_token=open_token(keyring, page),
        graph_api_version=page.graph_api_version,
        body=body,
        # A refusal (the comment is gone, too old, already answered) has no fallback.
        context=SendContext(
            now=now,
            page=reachability.page_state(page),
            message=MessageSpec(
                purpose=Purpose.TRANSACTIONAL, is_reply=True, fallback=Fallback.SKIP
            ),
            email=EmailState(status=None),
        ),
        # A comment permits this one reply (reference section 8: "comments on a post" are among
        # the window-opening actions); `messenger.window` is the closest reason on the closed list.
        decision=Decision(Reason.MESSENGER_WINDOW),
        attempts=delivery.attempts,
    )
