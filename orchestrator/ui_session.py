"""The campaign pages' sign-in: a signed, expiring cookie naming a workspace and an API key id.

Pure: the key ring and `now` come in, a value or an error comes out. The cookie never holds the
API key itself, only its id, so the key is typed once into the login form and then lives nowhere
but its owner's hands. The cookie is signed with the workspace's own derived key (DESIGN section
11) and carries its issue time; the caller still looks the key up on every request, so revoking it
ends every session at once.

Layout: `<workspace id>.<KeyRing token>`. The workspace id comes first because the signing key
is derived from it; the payload repeats it, so a token moved under another workspace's id fails
to verify twice over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from orchestrator.capture.origins import origin_of
from orchestrator.crypto import KeyRing, TokenExpired, TokenInvalid

COOKIE_NAME: Final = "outreach_session"
PURPOSE: Final = "ui-session"
# Ids are `<prefix>_<26 base32>` (orchestrator/ids.py); no dot, so the first dot ends the id.
_WORKSPACE_ID = re.compile(r"^[a-z]{1,8}_[0-9a-z]{10,40}$")
_MAX_COOKIE = 1024


class SessionRefused(ValueError):
    """No usable session: missing, tampered, foreign, or expired (`expired` says which)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class UiSession:
    workspace_id: str
    key_id: str


def issue(keyring: KeyRing, *, workspace_id: str, key_id: str, now: datetime) -> str:
    token = keyring.sign(
        {"w": workspace_id, "k": key_id}, workspace_id=workspace_id, purpose=PURPOSE, now=now
    )
    return f"{workspace_id}.{token}"


def read(keyring: KeyRing, cookie: str | None, *, max_age: int, now: datetime) -> UiSession:
    if not cookie or len(cookie) > _MAX_COOKIE:
        raise SessionRefused("no session")
    workspace_id, _, token = cookie.partition(".")
    if not _WORKSPACE_ID.match(workspace_id) or not token:
        raise SessionRefused("not a session cookie")
    try:
        payload = keyring.unsign(
            token, workspace_id=workspace_id, purpose=PURPOSE, max_age=max_age, now=now
        )
    except TokenExpired as exc:
        raise SessionRefused("session expired", expired=True) from exc
    except TokenInvalid as exc:
        raise SessionRefused("session does not verify") from exc
    if (
        not isinstance(payload, dict)
        or payload.get("w") != workspace_id
        or not isinstance(payload.get("k"), str)
    ):
        raise SessionRefused("session payload is not ours")
    return UiSession(workspace_id=workspace_id, key_id=payload["k"])


def same_origin(origin: str | None, public_url: str) -> bool:
    """The CSRF check on the pages' POSTs: a browser names the posting page's origin; one that
    is present and not ours (including the opaque `null`) is refused. Without the header (curl,
    an old client) the SameSite=Strict cookie is the protection."""
    if origin is None:
        return True
    ours = origin_of(public_url)
    return ours is not None and origin_of(origin) == ours
