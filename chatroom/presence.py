"""Who is online in each room, across every process: ``join``, ``leave`` and snapshots.

A logged-in user is online in a room while they have a stream open on it, in any tab, on
any process. Closing the last stream starts a short grace period: a page reload or a
reconnect within it announces nothing. A process renews its entries in storage every few
seconds; entries of a process that died expire, and the first process to notice announces
those users' leave.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable

import gevent

from .broker import Broker
from .events import Event, presence_channel
from .storage import Unavailable

# Seconds a user stays online after their last stream closed (a reload, a reconnect).
GRACE = 5.0
# Seconds an entry lives in storage unless its process renews it, and how often it does.
TTL = 30.0


class Presence:
    """This process's part of the online lists, and the announcements it makes."""

    def __init__(self, broker: Broker, grace: float = GRACE) -> None:
        self.process = uuid.uuid4().hex[:12]
        self._broker = broker
        self._storage = broker.storage
        self._grace = grace
        self._local: Counter[tuple[str, str]] = Counter()
        self._leaving: dict[tuple[str, str], gevent.Greenlet] = {}

    def connected(self, rooms: Iterable[str], user: str) -> None:
        """A stream of ``user`` opened on ``rooms``: announce a join where they were offline."""
        for room in rooms:
            entry = (room, user)
            self._local[entry] += 1
            if self._local[entry] > 1:
                continue
            leaving = self._leaving.pop(entry, None)
            if leaving is not None:
                leaving.kill(block=False)  # back within the grace period: nothing to say
                continue
            if self._storage.presence_add(room, user, self.process, TTL):
                self._announce("join", room, user)

    def disconnected(self, rooms: Iterable[str], user: str) -> None:
        """A stream of ``user`` closed: after the grace period, announce the leave."""
        for room in rooms:
            entry = (room, user)
            self._local[entry] -= 1
            if self._local[entry] <= 0:
                del self._local[entry]
                self._leaving[entry] = gevent.spawn_later(self._grace, self._leave, entry)

    def snapshot(self, room: str) -> Event:
        """Return the ``presence`` event that starts every stream: who is online now."""
        return Event.ephemeral(
            presence_channel(room), "presence", room=room, online=self._storage.online(room)
        )

    def stop(self) -> None:
        """Stop the leaves under way; this process's entries expire from storage by themselves."""
        for greenlet in self._leaving.values():
            greenlet.kill(block=False)

    def _leave(self, entry: tuple[str, str]) -> None:
        self._leaving.pop(entry, None)
        if self._local.get(entry):
            return
        room, user = entry
        try:
            if self._storage.presence_remove(room, user, self.process):
                self._announce("leave", room, user)
        except Unavailable:
            pass  # the entry expires by itself; another process announces the leave

    def _announce(self, kind: str, room: str, user: str) -> None:
        online = self._storage.online(room)
        self._broker.announce(
            Event.ephemeral(presence_channel(room), kind, room=room, user=user, online=online)
        )

    def renew(self) -> None:
        """Renew this process's entries, and announce who left with a process that died."""
        try:
            held = [*self._local, *self._leaving]
            if held:
                self._storage.presence_refresh(held, self.process, TTL)
            for room, user in self._storage.presence_expire():
                self._announce("leave", room, user)
        except Unavailable:
            pass  # Redis is away: the broker reconnects, the next round renews
