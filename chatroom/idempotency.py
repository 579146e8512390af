"""``Idempotency-Key``: a post sent again (a retry after a 503 or a dropped connection)
answers the message it already made instead of making a second one.

A key belongs to the session that sent it, so nobody can read another person's message
by guessing their key. The store keeps the digest of (session, key) next to the event
for :data:`~chatroom.storage.KEY_TTL` seconds, written in the same atomic step as the
append.
"""

from __future__ import annotations

import hashlib

from flask import request

from .errors import ApiError

HEADER = "Idempotency-Key"
_MAX_LENGTH = 255


def request_key(session: str) -> str:
    """Return the store's key for this request's ``Idempotency-Key``, "" if it has none."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return ""
    if not 0 < len(raw) <= _MAX_LENGTH or not raw.isascii() or not raw.isprintable():
        raise ApiError(
            400, "invalid_idempotency_key",
            f"{HEADER} must be 1 to {_MAX_LENGTH} printable ASCII characters, like a UUID.",
        )
    return hashlib.sha256(f"{session}\0{raw}".encode()).hexdigest()[:32]

