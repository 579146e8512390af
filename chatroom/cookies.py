"""The session cookie: Flask's signed cookie, its signature checked once per cookie.

Checking the signature (an HMAC, base64 and JSON) was an eighth of a post's time, paid
again on every post of the same visitor with the same cookie. A cookie that verified once
verifies again for as long as it is valid, so what it held is remembered, for a while
and for a bounded number of cookies. A cookie that does not verify is never remembered.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

if TYPE_CHECKING:
    from flask import Flask, Request

# A remembered cookie is checked again after this long (a signed cookie expires, and
# a new secret key makes old ones invalid, only on a restart).
REMEMBER_SECONDS = 600.0
# Past this many cookies the memory starts again: one per visitor is plenty.
REMEMBER_MOST = 10_000


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed session cookie, with what each valid cookie holds remembered."""

    def __init__(self) -> None:
        # The signed cookie's value -> (what the session held, until when). Keyed by the
        # session cookie alone: the rest of a Cookie header is the visitor's to vary.
        self._verified: dict[str, tuple[dict[str, Any], float]] = {}

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        value = request.cookies.get(self.get_cookie_name(app))
        now = time.monotonic()
        if value:
            found = self._verified.get(value)
            if found is not None and found[1] > now:
                return self.session_class(found[0])
        session = super().open_session(app, request)
        if value and session:  # a session that verified and holds something
            if len(self._verified) >= REMEMBER_MOST:
                self._verified = {}
            self._verified[value] = (dict(session), now + REMEMBER_SECONDS)
        return session
