"""Signed links, pure (DESIGN section 6): the m.me `ref`, the email click token, the unsubscribe
token. Each is compact, URL-safe, signed with the workspace's own key and a key id, and expires.

    /r/<click token>  -> records the click, 302 to https://m.me/<username>?ref=<ref>
    ref               -> comes back in messaging_referrals / a Get Started postback
    /u/<token>        -> one-click unsubscribe (RFC 8058)

Public tokens (click, unsubscribe) start with the workspace id, which is not a secret, so the
keyless endpoint knows which workspace key verifies the rest. A ref travels only through Meta back
to the Page's webhook, where the Page already names the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from orchestrator.crypto import KeyRing, TokenExpired, TokenInvalid

REF_MAX_AGE = timedelta(days=30)
CLICK_MAX_AGE = timedelta(days=90)
UNSUBSCRIBE_MAX_AGE = timedelta(days=730)
# Reference 5 [S16]: a ref may be up to 2,083 characters; the old plugin rule was 250 from
# [a-zA-Z0-9+/=-.:_]. We stay within the old rule, which every surface accepts.
REF_LIMIT = 250


class Intent(StrEnum):
    SUPPORT = "support"
    SUBSCRIBE = "subscribe"
    INVITE = "invite"


class LinkInvalid(ValueError):
    """Tampered, truncated, foreign or malformed."""


class LinkExpired(ValueError):
    pass


@dataclass(frozen=True)
class Ref:
    contact_id: str
    intent: Intent
    delivery_id: str | None = None

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"c": self.contact_id, "i": self.intent.value}
        if self.delivery_id:
            data["d"] = self.delivery_id
        return data


@dataclass(frozen=True)
class Click:
    workspace_id: str
    contact_id: str
    page_id: str
    intent: Intent
    delivery_id: str | None = None


@dataclass(frozen=True)
class Unsubscribe:
    """Names the email identity, never the address: URLs end up in logs and proxies."""

    workspace_id: str
    contact_id: str
    email_identity_id: str
    delivery_id: str | None = None


def _unsign(
    keyring: KeyRing,
    token: str,
    *,
    workspace_id: str,
    purpose: str,
    max_age: timedelta,
    now: datetime,
) -> Any:
    try:
        return keyring.unsign(
            token,
            workspace_id=workspace_id,
            purpose=purpose,
            max_age=int(max_age.total_seconds()),
            now=now,
        )
    except TokenExpired as exc:
        raise LinkExpired(str(exc)) from exc
    except TokenInvalid as exc:
        raise LinkInvalid(str(exc)) from exc


def _split_public(token: str) -> tuple[str, str]:
    workspace_id, sep, rest = token.partition("~")
    if not sep or not workspace_id.startswith("ws_") or not rest:
        raise LinkInvalid("not one of our links")
    return workspace_id, rest


def make_ref(keyring: KeyRing, ref: Ref, *, workspace_id: str, now: datetime) -> str:
    token = keyring.sign(ref.payload(), workspace_id=workspace_id, purpose="ref", now=now)
    if len(token) > REF_LIMIT:  # pragma: no cover - ids are fixed length
        raise ValueError("ref too long")
    return token


def read_ref(keyring: KeyRing, token: str, *, workspace_id: str, now: datetime) -> Ref:
    data = _unsign(
        keyring, token, workspace_id=workspace_id, purpose="ref", max_age=REF_MAX_AGE, now=now
    )
    try:
        return Ref(contact_id=str(data["c"]), intent=Intent(data["i"]), delivery_id=data.get("d"))
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkInvalid("malformed ref") from exc


def mme_url(username: str, ref: str) -> str:
    # Reference 5 [S16]: the ref must be URL-encoded.
    return f"https://m.me/{quote(username)}?ref={quote(ref, safe='')}"


def make_click_token(keyring: KeyRing, click: Click, *, now: datetime) -> str:
    payload: dict[str, Any] = {"c": click.contact_id, "p": click.page_id, "i": click.intent.value}
    if click.delivery_id:
        payload["d"] = click.delivery_id
    signed = keyring.sign(payload, workspace_id=click.workspace_id, purpose="click", now=now)
    return f"{click.workspace_id}~{signed}"


def read_click_token(keyring: KeyRing, token: str, *, now: datetime) -> Click:
    workspace_id, rest = _split_public(token)
    data = _unsign(
        keyring, rest, workspace_id=workspace_id, purpose="click", max_age=CLICK_MAX_AGE, now=now
    )
    try:
        return Click(
            workspace_id=workspace_id,
            contact_id=str(data["c"]),
            page_id=str(data["p"]),
            intent=Intent(data["i"]),
            delivery_id=data.get("d"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkInvalid("malformed link") from exc


def make_unsubscribe_token(keyring: KeyRing, unsubscribe: Unsubscribe, *, now: datetime) -> str:
    payload: dict[str, Any] = {"c": unsubscribe.contact_id, "e": unsubscribe.email_identity_id}
    if unsubscribe.delivery_id:
        payload["d"] = unsubscribe.delivery_id
    signed = keyring.sign(
        payload, workspace_id=unsubscribe.workspace_id, purpose="unsubscribe", now=now
    )
    return f"{unsubscribe.workspace_id}~{signed}"


def read_unsubscribe_token(keyring: KeyRing, token: str, *, now: datetime) -> Unsubscribe:
    workspace_id, rest = _split_public(token)
    data = _unsign(
        keyring,
        rest,
        workspace_id=workspace_id,
        purpose="unsubscribe",
        max_age=UNSUBSCRIBE_MAX_AGE,
        now=now,
    )
    try:
        return Unsubscribe(
            workspace_id=workspace_id,
            contact_id=str(data["c"]),
            email_identity_id=str(data["e"]),
            delivery_id=data.get("d"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkInvalid("malformed link") from exc


def public_url(base: str, path: str, token: str) -> str:
    return f"{base.rstrip('/')}/{path}/{token}"
