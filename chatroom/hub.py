"""The local fan-out: every event a process receives, put on each interested listener's buffer.

The broker hands each event to :meth:`Hub.deliver` once per process; from there it costs a
dictionary lookup and a list append per listener. Each listener's buffer is bounded: one
that fills up (a client that stopped reading) is disconnected and resumes later with
``Last-Event-ID``, so it never holds memory or delays anyone else.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event as Signal

from .events import (
    ROOMS_CHANNEL,
    Event,
    dm_parties,
    presence_channel,
    room_channel,
    user_channel,
)
from .storage import GENERAL

if TYPE_CHECKING:
    from .identity import User
    from .storage import Storage

log = logging.getLogger(__name__)


class Listener:
    """One open stream: the channels it follows and the frames waiting to be written.

    Once its stream has sent its first frames, a listener can be handed the connection's
    socket (:meth:`Hub.write_directly`). From then on its events are written by the hub,
    once per turn of the event loop: every frame that arrived for it since the last turn
    goes out in one non-blocking ``send()``. The stream's greenlet is woken only when the
    socket is full or a keep-alive is due: no greenlet switch and no WSGI write per
    delivery, and under load several frames share one system call.
    """

    __slots__ = (
        "_dirty", "_signal", "busy", "channels", "chunked", "closed", "dropped", "greenlet",
        "limit", "outgoing", "partial", "pending", "sock", "user", "writes",
    )

    def __init__(self, channels: Iterable[str], user: User | None, limit: int) -> None:
        self.channels = set(channels)
        self.user = user
        self.limit = limit
        # (id, frame) pairs: the id lets a stream that just replayed skip what it already sent.
        self.pending: list[tuple[int | None, bytes]] = []
        self.closed = False
        self.dropped = False
        self.greenlet = gevent.getcurrent()
        self._signal = Signal()
        self.sock: Any = None
        self.chunked = False
        self._dirty: list[Listener] | None = None
        # Frames for the hub's next flush; what a send left unwritten (framed already);
        # whether the stream's greenlet is writing; how many flushes went out.
        self.outgoing: list[bytes] = []
        self.partial = b""
        self.busy = False
        self.writes = 0

    def push(self, event: Event) -> bool:
        """Queue ``event``; return False if the buffer was full and the listener is now dropped."""
        if self.closed:
            return True
        if self._dirty is not None and not self.pending and not self.partial and not self.busy:
            if not self.outgoing:
                self._dirty.append(self)
            self.outgoing.append(event.frame)
            if len(self.outgoing) < self.limit:
                return True
        if len(self.pending) + len(self.outgoing) >= self.limit:
            self.dropped = True
            self.close()
            # The stream's greenlet may be stuck writing to a client that stopped reading:
            # only an exception gets it out, and its cleanup then closes the socket.
            if self.greenlet is not gevent.getcurrent():
                self.greenlet.kill(block=False)
            return False
        if not self.pending:
            self._signal.set()
        self.pending.append((event.id, event.frame))
        return True

    def flush(self) -> None:
        """Send what arrived since the last flush, without ever waiting for the socket."""
        frames, self.outgoing = self.outgoing, []
        if self.closed or not frames:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if self.pending or self.partial or self.busy:
            # The stream's greenlet is writing: queue behind it, in order.
            self.pending.append((None, data))
            self._signal.set()
            return
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        try:
            sent = self.sock.send(data, 0, 0.0)  # timeout 0: never wait
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close()  # the client is gone; its stream cleans up
            return
        self.writes += 1
        if sent < len(data):
            self.partial = data[sent:]
            self._signal.set()

    def take(self, timeout: float) -> list[tuple[int | None, bytes]] | None:
        """Wait up to ``timeout`` seconds for events.

        Return what is pending ([] if nothing came), or None once the listener is closed.
        """
        if not self.pending and not self.partial and not self.closed:
            self._signal.wait(timeout)
        if self.closed:
            return None
        batch, self.pending = self.pending, []
        self._signal.clear()
        return batch

    def send_batch(self, frames: bytes) -> None:
        """Write what a flush left over, then ``frames``, blocking this greenlet only."""
        if frames and self.chunked:
            frames = b"%x\r\n%s\r\n" % (len(frames), frames)
        data, self.partial = self.partial + frames, b""
        self.busy = True
        try:
            self.sock.sendall(data)
        finally:
            self.busy = False
        self.writes += 1

    def close(self) -> None:
        """End the stream at its next wake-up."""
        self.closed = True
        self._signal.set()


class Hub:
    """The listeners of one process, indexed by channel."""

    def __init__(self) -> None:
        self._by_channel: dict[str, set[Listener]] = {}
        self._all: set[Listener] = set()
        # Plain counters on the hot path; metrics and the stats page read them.
        self.events = 0
        self.deliveries = 0
        self.dropped = 0
        # Seconds from an event's arrival to the end of the flush that sent it, recent
        # flushes: the delivery latency this process adds.
        self.fanout_seconds: deque[float] = deque(maxlen=2000)
        self._dirty: list[Listener] = []
        self._flush_due = False
        self._first_queued = 0.0
        self._loop = gevent.get_hub().loop

    def write_directly(self, listener: Listener, sock: Any, chunked: bool) -> None:
        """From now on, send ``listener``'s events straight to ``sock`` (HTTP chunks if asked)."""
        listener.sock = sock
        listener.chunked = chunked
        listener._dirty = self._dirty

    def __len__(self) -> int:
        return len(self._all)

    def channels(self) -> set[str]:
        """Return every channel some local listener follows."""
        return set(self._by_channel)

    def add(self, listener: Listener) -> None:
        """Start delivering to ``listener``."""
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

    def deliver(self, event: Event) -> None:
        """Put ``event`` on the buffer of every local listener that follows its channel."""
        if event.id is not None:
            self.events += 1
        targets = self._targets(event.channel)
        if not targets:
            return
        if not self._dirty:
            self._first_queued = time.monotonic()
        dropped = [listener for listener in targets if not listener.push(event)]
        if self._dirty and not self._flush_due:
            # Once this greenlet yields: events that arrive meanwhile share the flush.
            self._flush_due = True
            self._loop.run_callback(self._flush)
        self.deliveries += len(targets) - len(dropped)
        for listener in dropped:
            self.dropped += 1
            self.remove(listener)
        if event.kind == "room_closed":
            self._move_to_general(event.payload()["room"])

    def _flush(self) -> None:
        self._flush_due = False
        dirty, self._dirty[:] = list(self._dirty), []
        for listener in dirty:
            listener.flush()
        self.fanout_seconds.append(time.monotonic() - self._first_queued)

    def resync(self, storage: Storage, after: int) -> int:
        """Deliver what storage holds after id ``after`` for local listeners; return the last id."""
        last = after
        for event in storage.since(self.channels(), after):
            self.deliver(event)
            last = event.id or last
        return last

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
        for listener in list(self._all):
            listener.close()
