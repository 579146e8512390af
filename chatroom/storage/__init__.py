"""What outlives a process: the event log (history and replay), rooms and held names.

Two implementations: :mod:`.sqlite` (an embedded file in the data directory, for the
in-process mode) and :mod:`.redis` (shared by every process that uses the same Redis).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

from ..events import Draft, Event

GENERAL = "general"


@dataclass(frozen=True)
class Room:
    """A chat room; ``created_by`` is None for ``general``, which nobody can close."""

    name: str
    created_by: str | None


class Storage(ABC):
    """The persistent state of a chat, whatever keeps it."""

    @abstractmethod
    def append(self, draft: Draft) -> Event:
        """Give ``draft`` the next id, store it, trim its channel to the retention and return it."""

    @abstractmethod
    def history(self, channel: str, limit: int, before: int | None = None) -> list[Event]:
        """Return the newest ``limit`` events of ``channel`` below id ``before``, oldest first."""

    @abstractmethod
    def since(self, channels: Iterable[str], after: int) -> list[Event]:
        """Return every retained event of ``channels`` with an id above ``after``, in id order."""

    @abstractmethod
    def last_id(self) -> int:
        """Return the highest id given so far (0 before the first event)."""

    @abstractmethod
    def raise_last_id(self, floor: int) -> None:
        """Make sure every id given from now on is above ``floor``."""

    @abstractmethod
    def create_room(self, room: Room) -> bool:
        """Store a new room; return False if one of that name exists."""

    @abstractmethod
    def get_room(self, name: str) -> Room | None:
        """Return the room called ``name``, or None."""

    @abstractmethod
    def list_rooms(self) -> list[Room]:
        """Return every room, ``general`` first, then by name."""

    @abstractmethod
    def delete_room(self, name: str) -> None:
        """Remove a room and its history."""

    @abstractmethod
    def claim_name(self, key: str, session: str, hold: float) -> bool:
        """Hold name ``key`` for ``session`` for ``hold`` seconds.

        Return False if another session holds it now; holding it again extends the hold.
        """

    @abstractmethod
    def release_name(self, key: str, session: str) -> None:
        """Free name ``key`` if ``session`` holds it."""

    def close(self) -> None:  # noqa: B027 - closing is optional for a storage
        """Release files and connections."""

    def ensure_general(self) -> None:
        """Create ``general`` unless it exists: it always does."""
        self.create_room(Room(GENERAL, None))


def sort_rooms(rooms: Iterable[Room]) -> list[Room]:
    """Put ``general`` first and the others in name order, as every listing shows them."""
    return sorted(rooms, key=lambda r: (r.name != GENERAL, r.name))
