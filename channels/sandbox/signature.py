"""Webhook body encoding and signing, the way Meta does it (reference §4.2, [S8][S9])."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
LEGACY_SIGNATURE_HEADER = "X-Hub-Signature"


def encode_body(payload: Any, *, escape_slashes: bool = False) -> bytes:
    """Compact JSON with every non-ASCII character written as a \\u escape.

    Meta signs the escaped-unicode form (`äöå` travels as `\\u00e4\\u00f6\\u00e5`), so a receiver
    that re-serializes parsed JSON computes a different signature (reference §4.2, [S8]).
    `escape_slashes` writes `/` as `\\/` like Meta's PHP encoder does in some payloads; the
    reference does not mention it, so it is off by default.
    """
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    if escape_slashes:
        # "/" never appears outside strings in JSON, so this stays valid JSON.
        text = text.replace("/", "\\/")
    return text.encode("ascii")


def sign(body: bytes, app_secret: str) -> str:
    """`X-Hub-Signature-256` value: `sha256=` + lowercase hex HMAC-SHA256 of the raw body."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def sign_legacy(body: bytes, app_secret: str) -> str:
    """Legacy `X-Hub-Signature` (SHA-1) value, still sent alongside (reference §4.2)."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha1).hexdigest()
    return f"sha1={digest}"


def verify(body: bytes, header: str | None, app_secret: str) -> bool:
    """Check an `X-Hub-Signature-256` header against the raw bytes (reference §4.2 sample)."""
    if not header or not header.startswith("sha256="):
        return False
    expected = sign(body, app_secret)[len("sha256=") :]
    return hmac.compare_digest(expected, header[len("sha256=") :].lower())
