"""Who is asking: the display name in the signed session cookie, and how names are held.

A name is held from login until logout, or until its session has had no open stream for
``name_hold`` seconds (60 by default). While a session has a stream open, this process
renews its hold in the background; when the last one closes, the hold runs out by itself.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass

import gevent
from flask import session

from .errors import ApiError
from .storage import Storage
from .validation import name_key

# How often open streams renew their names' holds, and the slack added to cover the gap.
_RENEW_EVERY = 10.0


@dataclass(frozen=True)
class User:
    """A logged-in visitor: the name as typed, the form it is held under, and its session."""

    name: str
    key: str
    session: str


def session_user() -> User | None:
    """Return the user of this request's session, or None if it has not logged in."""
    name, sid = session.get("user"), session.get("sid")
    if not isinstance(name, str) or not isinstance(sid, str):
        return None
    return User(name, name_key(name), sid)


def require_user() -> User:
    """Return the logged-in user, or answer 401."""
    user = session_user()
    if user is None:
        raise ApiError(401, "login_required", "Log in first: POST /login with a username.")
    return user


def new_session_id() -> str:
    """Return a fresh random id for a session, the owner of the names it holds."""
    return secrets.token_urlsafe(16)


class NameHolds:
    """Claims, renews and frees names in the storage on behalf of this process's sessions."""

    def __init__(self, storage: Storage, hold: float) -> None:
        self._storage = storage
        self._hold = hold
        self._open: Counter[tuple[str, str]] = Counter()
        self._renewer: gevent.Greenlet | None = None

    def claim(self, user: User) -> bool:
        """Hold ``user.name`` for its session; False if another online session holds it."""
        return self._storage.claim_name(user.key, user.session, self._hold + _RENEW_EVERY)

    def confirm(self, user: User) -> None:
        """Renew the hold before acting as ``user``; answer 409 if someone else took the name."""
        if not self.claim(user):
            raise ApiError(
                409, "name_taken",
                f"Someone else is using the name {user.name!r} now."
                " Log in again with another name.",
            )

    def release(self, user: User) -> None:
        """Free the name at logout."""
        self._storage.release_name(user.key, user.session)

    def stream_opened(self, user: User) -> None:
        """Keep the name held while this stream stays open."""
        self._open[(user.key, user.session)] += 1
        if self._renewer is None:
            self._renewer = gevent.spawn(self._renew_forever)

    def stream_closed(self, user: User) -> None:
        """Start the name's countdown once its session has no stream open here."""
        entry = (user.key, user.session)
        self._open[entry] -= 1
        if self._open[entry] <= 0:
            del self._open[entry]
            self._storage.claim_name(user.key, user.session, self._hold)

    def held(self) -> list[tuple[str, str]]:
        """Return the (name key, session) pairs this process holds for open streams."""
        return list(self._open)

    def stop(self) -> None:
        """Stop renewing (the server is stopping)."""
        if self._renewer is not None:
            self._renewer.kill(block=False)

    def _renew_forever(self) -> None:
        while True:
            gevent.sleep(_RENEW_EVERY)
            for key, sid in list(self._open):
                try:
                    self._storage.claim_name(key, sid, self._hold + _RENEW_EVERY)
                except Exception:  # a broker outage: try again next round
                    break
