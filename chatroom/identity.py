"""Who is asking: sessions the server keeps, and the display names they hold.

The cookie carries only a session id, signed; the session itself (its name, whether it is
the host's) lives in storage, shared by every process, so logging out, a kick or expiry
ends it everywhere at once and a copied cookie stops working. Every login starts a new
session. Private messages belong to sessions, not to names: a later holder of a name
starts with none of the earlier holder's conversations.

A name is held from login until logout, or until its session has had no open stream for
``name_hold`` seconds (60 by default). While a session has a stream open, this process
renews its hold in the background; when the last one closes, the hold runs out by itself.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass

from flask import current_app, g, session

from .errors import ApiError
from .events import SESSIONS_CHANNEL, Event, now_ms
from .renewal import RENEW_EVERY
from .storage import Session, Storage, Unavailable
from .validation import name_key

# A session unused for this long ends by itself (the cookie would outlive it).
SESSION_TTL = 30 * 24 * 3600.0


@dataclass(frozen=True)
class User:
    """A logged-in visitor: the name as typed, the form it is held under, and its session."""

    name: str
    key: str
    session: str
    host: bool = False


def session_user() -> User | None:
    """Return the user of this request's live session, or None if there is none."""
    if "user" not in g:
        sid = session.get("sid")
        found = None
        if isinstance(sid, str):
            found = current_app.extensions["chatroom"].storage.get_session(sid)
        g.user = user_of(found)
    return g.user


def user_of(found: Session | None) -> User | None:
    """Return the user of a session read from storage (None for none)."""
    return None if found is None else User(found.name, name_key(found.name), found.id, found.host)


def require_user() -> User:
    """Return the logged-in user, or answer 401."""
    user = session_user()
    if user is None:
        raise ApiError(401, "login_required", "Log in first: POST /login with a username.")
    return user


def name_taken(user: User) -> ApiError:
    """Return the 409 for ``user`` acting under a name someone else holds now."""
    return ApiError(
        409, "name_taken",
        f"Someone else is using the name {user.name!r} now. Log in again with another name.",
    )


def new_session_id() -> str:
    """Return a fresh random id for a session, the owner of the names it holds."""
    return secrets.token_urlsafe(24)


class NameHolds:
    """Claims, renews and frees names in the storage on behalf of this process's sessions."""

    def __init__(self, storage: Storage, hold: float) -> None:
        self._storage = storage
        self._hold = hold
        self._open: Counter[tuple[str, str]] = Counter()
        # The session of each open entry, to put back into a Redis that lost it.
        self._sessions: dict[tuple[str, str], Session] = {}

    def claim(self, user: User) -> bool:
        """Hold ``user.name`` for its session; False if another online session holds it."""
        return self._storage.claim_name(user.key, user.session, self._hold + RENEW_EVERY)

    def confirm(self, user: User) -> None:
        """Renew the hold before acting as ``user``; answer 409 if someone else took the name."""
        if not self.claim(user):
            raise name_taken(user)

    def hold_for(self, user: User) -> tuple[str, str, float]:
        """Return what a post checks and renews with its append: (name key, session, hold)."""
        return user.key, user.session, self._hold + RENEW_EVERY

    def stream_opened(self, user: User) -> None:
        """Keep the name held while this stream stays open."""
        self._open[(user.key, user.session)] += 1
        self._sessions[(user.key, user.session)] = Session(user.session, user.name, user.host)

    def stream_closed(self, user: User) -> None:
        """Start the name's countdown once its session has no stream open here."""
        entry = (user.key, user.session)
        self._open[entry] -= 1
        if self._open[entry] <= 0:
            del self._open[entry]
            self._sessions.pop(entry, None)
            # Only if still held: a name freed at logout stays free.
            self._storage.renew_name(user.key, user.session, self._hold)

    def forget(self, session_id: str) -> None:
        """Stop renewing the names of a session that ended."""
        for entry in [e for e in self._open if e[1] == session_id]:
            del self._open[entry]
            self._sessions.pop(entry, None)

    def held(self) -> list[tuple[str, Session]]:
        """Return the (name key, session) of every open stream of this process."""
        return [(key, self._sessions[(key, sid)]) for key, sid in self._open]

    def renew(self) -> None:
        """Renew the hold of every name with a stream open here (one round)."""
        for key, sid in list(self._open):
            try:
                self._storage.renew_name(key, sid, self._hold + RENEW_EVERY)
            except Unavailable:
                return  # a broker outage: the next round tries again


class Sessions:
    """Starts and ends sessions; an ending reaches every stream of it, on every process."""

    def __init__(self, storage: Storage, names: NameHolds, announce) -> None:
        self._storage = storage
        self._names = names
        self._announce = announce

    def login(
        self, name: str, previous: User | None, host: bool = False, address: str = ""
    ) -> User:
        """Start a new session holding ``name``; end ``previous``. 409 if the name is taken.

        The session that held the name before (gone quiet, its hold run out) ends too: a
        name belongs to one login at a time, and nothing of the earlier one carries over.
        """
        user = User(name, name_key(name), new_session_id(), host)
        if previous is not None and previous.key == user.key:
            self.end(previous.session)  # the same person again: a fresh session
            previous = None
        if not self._names.claim(user):
            raise ApiError(
                409, "name_taken", f"The name {name!r} is in use by someone online. Pick another."
            )
        earlier = self._storage.find_user(user.key)
        self._storage.start_session(
            Session(user.session, name, host, now_ms(), address), user.key, SESSION_TTL
        )
        for ended in {previous.session if previous else None, earlier[1] if earlier else None}:
            if ended is not None and ended != user.session:
                self.end(ended)
        return user

    def end(self, session_id: str) -> Session | None:
        """End a session: its cookie stops working, its streams end, its name is free."""
        ended = self._storage.end_session(session_id)
        self._names.forget(session_id)
        self._announce(Event.ephemeral(SESSIONS_CHANNEL, "session_ended", session=session_id))
        return ended
