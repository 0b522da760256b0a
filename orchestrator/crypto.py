"""Encryption at rest and signed compact tokens (DESIGN section 11).

Built on `cryptography` (HKDF, AES-GCM) and `itsdangerous` (HMAC-signed, timestamped tokens); this
module only decides key derivation and the token layout, never the primitives.

* Every key derives from `OUTREACH_SECRET_KEY` with HKDF and a purpose label, so one secret can sign
  links, encrypt tokens and key suppression hashes without the uses weakening each other.
* Signing keys are per workspace (the workspace id is in the HKDF info), so a link minted for one
  workspace never verifies in another.
* Every token and ciphertext starts with a key id (a short hash of the master key), so retired keys
  listed in `OUTREACH_SECRET_KEYS_OLD` still verify and decrypt while new output uses the current key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

_CIPHER_VERSION = "v1"


class CryptoError(ValueError):
    """A token or ciphertext could not be verified or decrypted."""


class TokenInvalid(CryptoError):
    """Tampered, truncated, signed with an unknown key, for another workspace or purpose."""


class TokenExpired(CryptoError):
    """Correctly signed but older than its allowed age."""


def key_id(master: str) -> str:
    return hashlib.sha256(b"outreach-key-id:" + master.encode()).hexdigest()[:6]


def _derive(master: str, purpose: str, length: int = 32) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=b"outreach-orchestrator/v1",
        info=purpose.encode(),
    )
    return hkdf.derive(master.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class KeyRing:
    """The current master key and the retired ones still accepted."""

    current: str
    retired: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.current) < 32:
            raise ValueError("the secret key must be at least 32 characters")

    def _by_id(self) -> dict[str, str]:
        keys = {key_id(old): old for old in self.retired}
        keys[key_id(self.current)] = self.current
        return keys

    # -- encryption at rest ---------------------------------------------------------------

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """AES-256-GCM; `context` (e.g. "page_token:<workspace>") is bound as associated data,
        so a ciphertext copied into another row or workspace does not decrypt there."""
        nonce = os.urandom(12)
        aead = AESGCM(_derive(self.current, "encrypt"))
        sealed = aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_CIPHER_VERSION}.{key_id(self.current)}.{_b64(nonce + sealed)}"

    def decrypt(self, ciphertext: str, *, context: str) -> str:
        try:
            version, kid, body = ciphertext.split(".", 2)
        except ValueError as exc:
            raise CryptoError("not an outreach ciphertext") from exc
        master = self._by_id().get(kid)
        if version != _CIPHER_VERSION or master is None:
            raise CryptoError("ciphertext made with an unknown key")
        raw = _unb64(body)
        try:
            plain = AESGCM(_derive(master, "encrypt")).decrypt(raw[:12], raw[12:], context.encode())
        except InvalidTag as exc:
            raise CryptoError("ciphertext does not verify") from exc
        return plain.decode()

    def needs_reencryption(self, ciphertext: str) -> bool:
        return ciphertext.split(".", 2)[1:2] != [key_id(self.current)]

    # -- signed tokens ----------------------------------------------------------------------

    def _serializer(
        self, master: str, workspace_id: str, purpose: str, now: datetime
    ) -> URLSafeTimedSerializer:
        secret = _derive(master, f"sign:{workspace_id}")
        return URLSafeTimedSerializer(
            secret,
            salt=purpose,
            signer=_signer_at(int(now.timestamp())),
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def sign(self, payload: Any, *, workspace_id: str, purpose: str, now: datetime) -> str:
        """A compact URL-safe token `<kid>.<payload>.<time>.<signature>`; `now` is its issue time."""
        body = self._serializer(self.current, workspace_id, purpose, now).dumps(payload)
        return f"{key_id(self.current)}.{body}"

    def unsign(
        self, token: str, *, workspace_id: str, purpose: str, max_age: int, now: datetime
    ) -> Any:
        kid, _, body = token.partition(".")
        master = self._by_id().get(kid)
        if master is None or not body:
            raise TokenInvalid("token signed with an unknown key or truncated")
        serializer = self._serializer(master, workspace_id, purpose, now)
        try:
            return serializer.loads(body, max_age=int(max_age))
        except SignatureExpired as exc:
            raise TokenExpired("token expired") from exc
        except BadSignature as exc:
            raise TokenInvalid("token does not verify") from exc

    # -- keyed hashes ---------------------------------------------------------------------------

    def keyed_hashes(self, value: str, *, purpose: str) -> tuple[str, ...]:
        """HMAC-SHA256 of `value` under the current key first, then each retired key, so lookups
        keep matching rows written before a key rotation."""
        return tuple(
            hmac.new(_derive(master, f"hash:{purpose}"), value.encode(), hashlib.sha256).hexdigest()
            for master in (self.current, *self.retired)
        )


def _signer_at(timestamp: int) -> type[TimestampSigner]:
    """itsdangerous reads `time.time()`; we pass our clock's `now` instead (DESIGN section 8)."""

    class _SignerAt(TimestampSigner):
        def get_timestamp(self) -> int:
            return timestamp

    return _SignerAt


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
