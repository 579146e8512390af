"""The fan-out: every event a process receives, put on each interested listener's buffer.

The broker hands each event to :meth:`Fanout.receive` once per process. The fan-out is
the one place that keeps events in id order: it skips an id it already delivered and,
when ids jump (Redis pub/sub is at most once), delivers what storage holds in between
first; :meth:`Fanout.resync` does the same after an outage. From there an event costs a
dictionary lookup and a list append, whatever the number of listeners: events wait for
the flush, at once when the fan-out is idle and a little later under load (see
``_flush_or_wait``), which joins and frames them once for every listener that follows
the same of them and writes that to each socket in one write. Each
listener's buffer is bounded: one that falls too far behind (a client that stopped
reading) is cut and resumes later with ``Last-Event-ID``, so it never holds memory or
delays anyone else. A timer writes a comment to streams that had nothing for an interval.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
from gevent.pool import Group

from .events import (
    ROOMS_CHANNEL,
    SESSIONS_CHANNEL,
    Event,
    dm_parties,
    presence_channel,
    room_channel,
    user_channel,
)
from .handover import Batch
from .listener import Listener
from .periodic import Periodic
from .sse import KEEPALIVE
from .storage import GENERAL

if TYPE_CHECKING:
    from .storage import Storage

# The longest a flush waits for more events to share it (twice the last flush's time,
# up to this); it waits only while the fan-out was busy (events waiting or being sent)
# at least BUSY_SHARE of about the last BUSY_SECONDS (see Fanout._flush_or_wait).
MOST_WAIT = 0.05
BUSY_SHARE = 0.5
BUSY_SECONDS = 0.2


class Fanout:
    """The listeners of one process, indexed by channel."""

    def __init__(self, storage: Storage, keepalive: float = 15.0) -> None:
        self._storage = storage
        # The highest id delivered: what a gap or a resync fills in after.
        self.delivered = storage.last_id()
        # One timer for every handed-over stream: a comment to each that had nothing
        # written for a whole interval. Writing is also how a vanished client is noticed.
        self._timer = Periodic(
            max(0.05, keepalive / 3), lambda: self.keep_alive(time.monotonic() - keepalive)
        )
        self._closing = Group()
        self._by_channel: dict[str, set[Listener]] = {}
        self._all: set[Listener] = set()
        # Plain counters on the hot path; metrics and the stats page read them.
        self.events = 0
        self.deliveries = 0
        self.dropped = 0
        # Seconds from an event's arrival to the end of the flush that sent it, recent
        # flushes: the delivery latency this process adds.
        self.fanout_seconds: deque[float] = deque(maxlen=2000)
        # Events for the next flush, each with the listeners that follow its channel (the
        # index's own set: no listener joins it before the flush, see add).
        self._pending: list[tuple[Event, set[Listener]]] = []
        self._flush_due = False
        # When the first event of the coming flush arrived.
        self._first_queued = 0.0
        # When the last flush ended, how long it took, the share of recent time the
        # fan-out was busy, and the timer of a flush that waits (see _flush_or_wait).
        self._flush_ended = 0.0
        self._flush_took = 0.0
        self._busy = 0.0
        self._waiting: Any = None
        self._loop = gevent.get_hub().loop

    def take_over(
        self, listener: Listener, sock: Any, chunked: bool, on_end: Callable[[], None]
    ) -> None:
        """Write ``listener``'s stream from now on to ``sock`` (as HTTP chunks if ``chunked``).

        ``on_end`` runs once when the connection ends, whoever ends it.
        """
        # The cleanup may wait on storage, and a connection can end inside the event
        # loop's own callback (a flush), which must never wait: it runs in a greenlet.
        def ended() -> None:
            if listener.stalled:
                self.dropped += 1
            self._closing.spawn(on_end)

        listener.hand_over(sock, chunked, ended, self._loop)
        self._timer.start()

    def keep_alive(self, due: float) -> None:
        """Write a keep-alive to every handed-over stream with nothing written since ``due``."""
        for listener in list(self._all):
            writer = listener.writer
            if writer is None or writer.last_write > due:
                continue
            if not listener.write(KEEPALIVE):
                self._cut(listener)

    def __len__(self) -> int:
        return len(self._all)

    def channels(self) -> set[str]:
        """Return every channel some local listener follows."""
        return set(self._by_channel)

    def add(self, listener: Listener) -> None:
        """Start delivering to ``listener``: what is published from now on."""
        # Events published before are on their way to the others only.
        self._flush()
        self._all.add(listener)
        for channel in listener.channels:
            self._by_channel.setdefault(channel, set()).add(listener)

    def remove(self, listener: Listener) -> None:
        """Stop delivering to ``listener``; safe to call more than once."""
        self._all.discard(listener)
        for channel in listener.channels:
            group = self._by_channel.get(channel)
            if group is not None:
                group.discard(listener)
                if not group:
                    del self._by_channel[channel]

    def receive(self, event: Event) -> None:
        """Deliver ``event`` in id order: once, and after any events it skipped."""
        if event.id is not None:
            if event.id <= self.delivered:
                return  # already delivered, by a resync
            if event.id > self.delivered + 1:
                # Every id is published, so a gap is a loss on the way: storage is the
                # truth, and what it holds in between goes first.
                self.resync()
                if event.id <= self.delivered:
                    return
            self.delivered = event.id
        self._deliver(event)

    def offer(self, event: Event) -> None:
        """Deliver ``event``, just published by this process, at once if nothing comes
        before it in id order; else it waits for the broker's delivery, which fills in
        what comes before it first."""
        if event.id is not None and event.id == self.delivered + 1:
            self.receive(event)

    def resync(self) -> None:
        """Deliver what storage holds for local listeners after the last id delivered."""
        for event in self._storage.since(self.channels(), self.delivered):
            # A private message is filed under both parties' channels: it comes twice.
            if event.id is not None and event.id <= self.delivered:
                continue
            self._deliver(event)
            self.delivered = event.id or self.delivered

    def _deliver(self, event: Event) -> None:
        # Make ``event`` due to every local listener that follows its channel.
        if event.id is not None:
            self.events += 1
        targets = self._targets(event.channel)
        if not targets:
            if event.channel == SESSIONS_CHANNEL:
                self._flush()  # what came before the end (a "kicked") goes out first
                self._end_session(event.payload()["session"])
            return
        self._pending.append((event, targets))
        if len(self._pending) == 1:
            self._first_queued = time.monotonic()
            self._flush_or_wait()
        if event.kind == "room_closed":
            self._flush()  # the room's listeners get it before they move
            self._move_to_general(event.payload()["room"])

    def _end_session(self, session: str) -> None:
        # Logout or a kick: the session's streams end cleanly (the end of the body).
        for listener in [x for x in self._all if x.user is not None and x.user.session == session]:
            self.remove(listener)
            listener.end()

    def _cut(self, listener: Listener) -> None:
        self.dropped += 1
        self.remove(listener)
        listener.cut()

    def _flush_or_wait(self) -> None:
        # What a flush costs is a write per listener, however many events it carries. So
        # when the fan-out is busy (events were waiting or being sent half of about the
        # last fifth of a second), the next flush waits twice as long as the last took:
        # the events of that time share one write per listener, the writes per delivery
        # fall as the load rises, and no event waits longer than two flushes take (50 ms
        # at most). (Waiting once as long gathered fewer events per flush: the shared
        # bench's S2 with Redis measured a fifth fewer deliveries.) Otherwise the
        # event goes out at once, before its poster is even answered. A share over time,
        # not the gap since the last flush alone: two posts that happen to come close
        # together at a light load must not make the second wait.
        if self._flush_due:
            return
        idle = time.monotonic() - self._flush_ended
        if self._busy * math.exp(-idle / BUSY_SECONDS) >= BUSY_SHARE:
            self._flush_due = True
            self._loop.update_now()  # the loop's clock stands at its last wake-up
            self._waiting = self._loop.timer(min(2 * self._flush_took, MOST_WAIT))
            self._waiting.start(self._flush)
        else:
            self._flush()

    def _flush(self) -> None:
        self._flush_due = False
        if self._waiting is not None:
            self._waiting.stop()  # a flush that runs before its time (see add)
            self._waiting = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        began = time.monotonic()
        targets = pending[0][1]
        if all(group is targets for _, group in pending):
            # The common case: every event to the same listeners (one room's).
            self._send(Batch([event for event, _ in pending]), targets)
        else:
            self._send_grouped(pending)
        ended = time.monotonic()
        # Since the last flush ended, the fan-out was busy from this one's first event on:
        # that share of the time, weighed in with what came before as time passes.
        since = ended - self._flush_ended
        busy = ended - self._first_queued
        if since > 0:
            kept = math.exp(-since / BUSY_SECONDS)
            self._busy = kept * self._busy + (1 - kept) * min(1.0, busy / since)
        self._flush_ended = ended
        self._flush_took = ended - began
        self.fanout_seconds.append(busy)

    def _send_grouped(self, pending: list[tuple[Event, set[Listener]]]) -> None:
        # Listeners that follow the same of these events get the same batch: one bit per
        # distinct set of listeners, one batch per combination of bits.
        bit_of: dict[int, int] = {}
        member: dict[Listener, int] = {}
        bits = []
        for _, group in pending:
            bit = bit_of.get(id(group))
            if bit is None:
                bit = bit_of[id(group)] = 1 << len(bit_of)
                for listener in group:
                    member[listener] = member.get(listener, 0) | bit
            bits.append(bit)
        alike: dict[int, list[Listener]] = {}
        for listener, mask in member.items():
            alike.setdefault(mask, []).append(listener)
        for mask, listeners in alike.items():
            events = [event for (event, _), bit in zip(pending, bits, strict=True) if mask & bit]
            self._send(Batch(events), listeners)

    def _send(self, batch: Batch, listeners: set[Listener] | list[Listener]) -> None:
        full = [listener for listener in list(listeners) if not listener.deliver(batch)]
        self.deliveries += (len(listeners) - len(full)) * batch.frames
        for listener in full:
            self._cut(listener)

    def _targets(self, channel: str) -> set[Listener] | None:
        if channel == ROOMS_CHANNEL:
            return self._all
        if channel.startswith("dm:"):
            # Both parties, every tab of each.
            first, second = dm_parties(channel)
            return self._by_channel.get(user_channel(first), set()) | self._by_channel.get(
                user_channel(second), set()
            )
        return self._by_channel.get(channel)

    def _move_to_general(self, room: str) -> None:
        # After room_closed went out, the room's listeners follow general instead.
        moved: set[Listener] = set()
        for channel in (room_channel(room), presence_channel(room)):
            moved |= self._by_channel.pop(channel, set())
        for listener in moved:
            listener.channels -= {room_channel(room), presence_channel(room)}
            for channel in (room_channel(GENERAL), presence_channel(GENERAL)):
                listener.channels.add(channel)
                self._by_channel.setdefault(channel, set()).add(listener)

    def close_all(self) -> None:
        """End every stream (the server is stopping)."""
        self._timer.stop()
        self._flush()
        listeners = list(self._all)
        # Out of the index first: each stream's leave is then announced to other
        # processes, not fanned out to the thousands of streams ending beside it.
        for listener in listeners:
            self.remove(listener)
        for listener in listeners:
            listener.end()
        self._closing.join(timeout=2)
