"""What this process last read to decide a post on: sessions, host settings and rooms.

With Redis, reading them costs a round trip per post. A post decided on what was read
before still cannot go wrong: its append checks, in the same atomic step, that all of it
still holds (Draft.expects), and a post that finds something changed is decided again on
fresh values (:class:`~chatroom.storage.Stale`). So a logout, a kick, a mute or a closed
room takes effect at the very next post, in every process.
"""

from __future__ import annotations

from ..events import Expected
from . import GENERAL, Room, Session

# Beyond this many sessions the memory starts again (each costs one read to refill).
_MOST = 10_000


class Recalled:
    """Sessions, settings and rooms as last read, for the next post's decision."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._settings: dict[str, str | None] = {}
        self._rooms: dict[str, Room] = {}

    def get(
        self, session_id: str, keys: list[str], room: str
    ) -> tuple[Session, list[str | None], Room] | None:
        """Return what was read for all of these, or None if anything is unknown."""
        found = self._sessions.get(session_id)
        place = Room(GENERAL, None) if room == GENERAL else self._rooms.get(room)
        if found is None or place is None:
            return None
        try:
            return found, [self._settings[key] for key in keys], place
        except KeyError:
            return None

    def keep(self, found: Session | None, settings: dict[str, str | None],
             place: Room | None) -> None:
        """Remember what was just read (a session or room that is not, is not kept)."""
        if len(self._sessions) >= _MOST or len(self._settings) >= 4 * _MOST:
            self._sessions.clear()
            self._settings.clear()
            self._rooms.clear()
        if found is not None:
            self._sessions[found.id] = found
        self._settings.update(settings)
        if place is not None and place.name != GENERAL:
            self._rooms[place.name] = place

    def forget(self, expected: Expected | None) -> None:
        """Forget what a post found changed, so that it is read again."""
        if expected is None:
            return
        self._sessions.pop(expected.session, None)
        for key, _ in expected.settings:
            self._settings.pop(key, None)
        self._rooms.pop(expected.room, None)
