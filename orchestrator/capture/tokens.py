"""Signed capture tokens, pure (DESIGN section 10).

* The form token: the widget fetches it before the person can submit; it names the form and the
  consent version the widget shows, and carries its issue time. A capture is refused when the
  token is younger than the minimum fill time (bots submit at once) or older than the replay
  window; a used token's hash is stored, so it works once.
* The confirm token behind `/c/<token>` in the double opt-in email. Like the unsubscribe token it
  starts with the workspace id (not a secret) so the keyless endpoint knows which key verifies
  the rest, and it names the email identity, never the address.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from orchestrator.crypto import KeyRing, TokenExpired, TokenInvalid
from orchestrator.links import LinkExpired, LinkInvalid

FORM_PURPOSE = "capture-form"
CONFIRM_PURPOSE = "capture-confirm"
CONFIRM_MAX_AGE = timedelta(days=7)


class FormTokenProblem(StrEnum):
    """Why a form token was refused; the value is the counter and problem name."""

    MISSING = "token_missing"
    INVALID = "token_invalid"
    EXPIRED = "token_expired"
    TOO_FRESH = "token_too_fresh"


class FormTokenRejected(ValueError):
    def __init__(self, problem: FormTokenProblem, *, wait: timedelta | None = None) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.wait = wait


@dataclass(frozen=True)
class FormToken:
    form_id: str
    consent_version: str
    issued_at: datetime


def make_form_token(
    keyring: KeyRing,
    *,
    workspace_id: str,
    form_id: str,
    consent_version: str,
    nonce: str,
    now: datetime,
) -> str:
    """`nonce` keeps two tokens issued in the same second apart (each is usable once)."""
    payload = {"f": form_id, "v": consent_version, "t": int(now.timestamp()), "n": nonce}
    return keyring.sign(payload, workspace_id=workspace_id, purpose=FORM_PURPOSE, now=now)


def read_form_token(
    keyring: KeyRing,
    token: str | None,
    *,
    workspace_id: str,
    form_id: str,
    min_fill: timedelta,
    max_age: timedelta,
    now: datetime,
) -> FormToken:
    if not token:
        raise FormTokenRejected(FormTokenProblem.MISSING)
    try:
        data: Any = keyring.unsign(
            token,
            workspace_id=workspace_id,
            purpose=FORM_PURPOSE,
            max_age=int(max_age.total_seconds()),
            now=now,
        )
    except TokenExpired as exc:
        raise FormTokenRejected(FormTokenProblem.EXPIRED) from exc
    except TokenInvalid as exc:
        raise FormTokenRejected(FormTokenProblem.INVALID) from exc
    try:
        issued_at = datetime.fromtimestamp(int(data["t"]), UTC)
        parsed = FormToken(
            form_id=str(data["f"]), consent_version=str(data["v"]), issued_at=issued_at
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise FormTokenRejected(FormTokenProblem.INVALID) from exc
    if parsed.form_id != form_id:
        # Signed for another form of the same workspace: that form's rules were not applied.
        raise FormTokenRejected(FormTokenProblem.INVALID)
    age = now - parsed.issued_at
    if age < min_fill:
        raise FormTokenRejected(FormTokenProblem.TOO_FRESH, wait=min_fill - age)
    return parsed


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ConfirmLink:
    workspace_id: str
    email_identity_id: str
    capture_event_id: str
    delivery_id: str | None = None


def make_confirm_token(keyring: KeyRing, link: ConfirmLink, *, now: datetime) -> str:
    payload: dict[str, Any] = {"e": link.email_identity_id, "x": link.capture_event_id}
    if link.delivery_id:
        payload["d"] = link.delivery_id
    signed = keyring.sign(payload, workspace_id=link.workspace_id, purpose=CONFIRM_PURPOSE, now=now)
    return f"{link.workspace_id}~{signed}"


def read_confirm_token(keyring: KeyRing, token: str, *, now: datetime) -> ConfirmLink:
    """Raises `links.LinkInvalid` or `links.LinkExpired`, like the other public links."""
    workspace_id, sep, rest = token.partition("~")
    if not sep or not workspace_id.startswith("ws_") or not rest:
        raise LinkInvalid("not one of our links")
    try:
        data: Any = keyring.unsign(
            rest,
            workspace_id=workspace_id,
            purpose=CONFIRM_PURPOSE,
            max_age=int(CONFIRM_MAX_AGE.total_seconds()),
            now=now,
        )
    except TokenExpired as exc:
        raise LinkExpired(str(exc)) from exc
    except TokenInvalid as exc:
        raise LinkInvalid(str(exc)) from exc
    try:
        return ConfirmLink(
            workspace_id=workspace_id,
            email_identity_id=str(data["e"]),
            capture_event_id=str(data["x"]),
            delivery_id=data.get("d"),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise LinkInvalid("malformed link") from exc
