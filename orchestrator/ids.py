"""Opaque, time-ordered string ids with a type prefix (`ct_01J...`).

The time prefix keeps rows roughly in creation order, which makes keyset pagination cheap; the
random part (80 bits) makes ids unguessable enough that they never double as secrets.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str, *, millis: int | None = None) -> str:
    stamp = int(time.time() * 1000) if millis is None else millis
    randomness = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_base32(stamp, 10)}{_base32(randomness, 16)}"
