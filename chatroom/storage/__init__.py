"""What outlives a process, and what processes share: the event log (history and
replay), rooms, users and their held names, who is online, and rate-limit counters.

Two implementations: :mod:`.sqlite` (an embedded file in the data directory, for the
in-process mode) and :mod:`.redis` (shared by every process that uses the same Redis).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

from ..config import RateLimit
from ..events import Draft, Event, Expected

GENERAL = "general"
# How long a post's Idempotency-Key is remembered (see chatroom.idempotency).
KEY_TTL = 600.0


class Unavailable(RuntimeError):
    """The store (Redis) cannot be reached right now; the request may be tried again later."""

    code = "broker_unavailable"


class NameTaken(Exception):
    """Someone else holds the name a post was made under (see Draft.holds)."""


class RateExceeded(Exception):
    """A post went past one of its rate windows: ``index`` in Draft.counts, ``wait`` s."""

    def __init__(self, index: int, wait: float) -> None:
        super().__init__(index, wait)
        self.index = index
        self.wait = wait


class Stale(Exception):
    """What a post was decided on (Draft.expects) has changed: read it again, decide again."""


class StorageFailed(Unavailable):
    """The store is there but cannot write (disk full, file removed, read-only)."""

    code = "storage_unavailable"


@dataclass(frozen=True)
class Room:
    """A chat room; ``created_by`` is None for ``general``, which nobody can close.

    ``creator`` is the session that created it: only that login, not a later holder of
    the name, may close it.
    """

    name: str
    created_by: str | None
    creator: str | None = None


@dataclass(frozen=True)
class Session:
    """A login the server knows: its secret id, the display name it took, whether host."""

    id: str
    name: str
    host: bool = False
    # When it started (Unix ms) and from which client address: a ban names the address.
    started: int = 0
    address: str = ""


class Storage(ABC):
    """The persistent state of a chat, whatever keeps it."""

    # Whether :meth:`recall` may answer from what this process read before.
    remembers = False

    @abstractmethod
    def append(self, draft: Draft) -> tuple[Event, bool]:
        """Give ``draft`` the next id and file it under its channels, trimmed to the retention.

        In one atomic step: when an event with ``draft.key`` was stored in the last
        :data:`KEY_TTL` seconds, return it and False, storing and counting nothing; raise
        NameTaken if ``draft.holds`` names a name another session holds (else renew its
        hold); raise RateExceeded past a window of ``draft.counts`` (each counts the post);
        raise Stale if what ``draft.expects`` was read as has changed; else store the event
        and return it and True.
        """

    @abstractmethod
    def posted(self, key: str) -> Event | None:
        """Return the event an append stored under idempotency ``key`` (KEY_TTL s), or None."""

    @abstractmethod
    def history(self, channel: str, limit: int, before: int | None = None) -> list[Event]:
        """Return the newest ``limit`` events of ``channel`` below id ``before``, oldest first."""

    @abstractmethod
    def since(self, channels: Iterable[str], after: int) -> list[Event]:
        """Return every retained event of ``channels`` with an id above ``after``, in id order."""

    @abstractmethod
    def position(self) -> tuple[str, int]:
        """Return the store's epoch and the highest id given in it (0 before the first)."""

    def last_id(self) -> int:
        """Return the highest id given so far (0 before the first event)."""
        return self.position()[1]

    @abstractmethod
    def create_room(self, room: Room) -> bool:
        """Store a new room; return False if one of that name exists."""

    def get_room(self, name: str) -> Room | None:
        """Return the room called ``name``, or None; ``general`` always exists."""
        # Even in a store that just came back empty, before anyone has re-created it.
        return Room(GENERAL, None) if name == GENERAL else self._get_room(name)

    @abstractmethod
    def _get_room(self, name: str) -> Room | None:
        """Return the stored room called ``name``, or None."""

    def list_rooms(self) -> list[Room]:
        """Return every room, ``general`` first, then by name."""
        rooms = {room.name: room for room in self._list_rooms()}
        rooms.setdefault(GENERAL, Room(GENERAL, None))
        return sort_rooms(rooms.values())

    @abstractmethod
    def _list_rooms(self) -> list[Room]:
        """Return every stored room, in any order."""

    def count_rooms(self) -> int:
        """Return how many rooms the chat has, ``general`` included."""
        return len(self.list_rooms())

    @abstractmethod
    def delete_room(self, name: str) -> None:
        """Remove a room and its history."""

    @abstractmethod
    def claim_name(self, key: str, session: str, hold: float) -> bool:
        """Hold name ``key`` for ``session`` for ``hold`` seconds.

        Return False if another session holds it now; holding it again extends the hold.
        """

    @abstractmethod
    def renew_name(self, key: str, session: str, hold: float) -> None:
        """Hold name ``key`` for another ``hold`` seconds, only if ``session`` holds it."""

    @abstractmethod
    def release_name(self, key: str, session: str) -> None:
        """Free name ``key`` if ``session`` holds it."""

    @abstractmethod
    def start_session(self, session: Session, key: str, ttl: float) -> None:
        """Record a new login, and make it the one private messages to ``key`` reach."""

    @abstractmethod
    def get_session(self, session_id: str) -> Session | None:
        """Return the live session with this id, or None (ended, expired, never was)."""

    def recall(
        self, session_id: str, keys: list[str], room: str = GENERAL, fresh: bool = False
    ) -> tuple[Session | None, list[str | None], Room | None]:
        """Return a session, settings and a room to decide a post on, maybe as read before.

        Only for a post whose append expects them (Draft.expects): the append raises Stale
        if they changed, and the post is decided again on ``fresh`` values. Where reading
        costs a round trip, what was read last is remembered for the next post.
        """
        return self.get_session(session_id), self.get_settings(keys), self.get_room(room)

    def still(self, expected: Expected) -> bool:
        """Return whether what a post was decided on still holds (see Draft.expects)."""
        found = self.get_session(expected.session)
        if found is None or (found.name, found.host) != (expected.name, expected.host):
            return False
        keys = [key for key, _ in expected.settings]
        if keys and self.get_settings(keys) != [value for _, value in expected.settings]:
            return False
        return not expected.room or self.get_room(expected.room) is not None

    @abstractmethod
    def end_session(self, session_id: str) -> Session | None:
        """End a session (logout, kick); return it, or None if it was not live."""

    @abstractmethod
    def make_host(self, session_id: str) -> bool:
        """Give a live session the host's powers; False if it is not live."""

    @abstractmethod
    def delete_event(self, channel: str, event_id: int) -> Event | None:
        """Remove one event from ``channel``'s history; return it, or None if not there."""

    @abstractmethod
    def clear_channel(self, channel: str) -> None:
        """Remove every event of ``channel`` from history."""

    @abstractmethod
    def get_settings(self, keys: list[str]) -> list[str | None]:
        """Return the stored values of ``keys`` (room settings, mutes, bans), in one read."""

    @abstractmethod
    def set_setting(self, key: str, value: str | None) -> None:
        """Store ``value`` under ``key``; None removes it."""

    @abstractmethod
    def settings_with_prefix(self, prefix: str) -> dict[str, str]:
        """Return every stored setting whose key starts with ``prefix``."""

    @abstractmethod
    def find_user(self, key: str) -> tuple[str, str] | None:
        """Return the display name and session of the latest login under ``key``, or None."""

    @abstractmethod
    def rate_hit(self, key: str, limit: RateLimit) -> float:
        """Count one action of ``key``; return 0 if allowed, else the seconds until it is."""

    @abstractmethod
    def presence_add(self, room: str, user: str, process: str, ttl: float) -> bool:
        """Mark ``user`` online in ``room`` through ``process``; True if they were not before."""

    @abstractmethod
    def presence_remove(self, room: str, user: str, process: str) -> bool:
        """Undo :meth:`presence_add`; True if ``user`` is now offline in ``room``."""

    @abstractmethod
    def presence_refresh(
        self, entries: Iterable[tuple[str, str]], process: str, ttl: float
    ) -> None:
        """Renew ``process``'s (room, user) entries for another ``ttl`` seconds."""

    @abstractmethod
    def presence_expire(self) -> list[tuple[str, str]]:
        """Drop entries whose process stopped renewing them; return the (room, user) now gone."""

    @abstractmethod
    def online(self, room: str) -> list[str]:
        """Return who is online in ``room``, sorted."""

    @property
    def failure(self) -> str | None:
        """Say why the store cannot write now, or None while it can."""
        return None

    def online_counts(self, rooms: Iterable[str]) -> dict[str, int]:
        """Return how many users are online in each of ``rooms``."""
        return {room: len(self.online(room)) for room in rooms}

    def close(self) -> None:  # noqa: B027 - closing is optional for a storage
        """Release files and connections."""

    def ensure_general(self) -> None:
        """Create ``general`` unless it exists: it always does."""
        self.create_room(Room(GENERAL, None))


def sort_rooms(rooms: Iterable[Room]) -> list[Room]:
    """Put ``general`` first and the others in name order, as every listing shows them."""
    return sorted(rooms, key=lambda r: (r.name != GENERAL, r.name))
