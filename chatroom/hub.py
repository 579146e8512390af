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

    Once its stream has sent its first frames, a listener can be given the connection's
    socket (:meth:`write_directly`). From then on, an event is written to the socket by
    the process that received it, with one non-blocking ``send()``, while the socket
    takes it; the stream's greenlet is woken only when the socket is full or the
    keep-alive is due. That spares a greenlet switch and a WSGI write per delivery.
    """

    __slots__ = (
        "_signal", "busy", "channels", "chunked", "closed", "dropped", "greenlet", "limit",
        "partial", "pending", "sock", "user",
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
        self.sock: Any = None  # set by write_directly()
        self.chunked = False
        # What a non-blocking send left unwritten (framed already), and whether the
        # stream's greenlet is writing: in either case others must queue behind it.
        self.partial = b""
        self.busy = False

    def write_directly(self, sock: Any, chunked: bool) -> None:
        """Let deliveries go straight to ``sock``, as HTTP chunks if ``chunked``."""
        self.chunked = chunked
        self.sock = sock

    def push(self, event: Event) -> bool:
        """Send or queue ``event``; return False if the buffer was full and it is now dropped."""
        if self.closed:
            return True
        if self.sock is not None and not self.pending and not self.partial and not self.busy:
            data = event.chunk if self.chunked else event.frame
            try:
                sent = self.sock.send(data, 0, 0.0)  # timeout 0: never wait
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close()  # the client is gone; its stream cleans up
                return True
            if sent == len(data):
                return True
            self.partial = data[sent:]
            self._signal.set()
            return True
        if len(self.pending) >= self.limit:
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
        """Write what a direct send left over, then ``frames``, blocking this greenlet only."""
        if frames and self.chunked:
            frames = b"%x\r\n%s\r\n" % (len(frames), frames)
        data, self.partial = self.partial + frames, b""
        self.busy = True
        try:
            self.sock.sendall(data)
        finally:
            self.busy = False

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
        # Seconds each recent fan-out took, first listener to last: the delivery latency
        # this process adds.
        self.fanout_seconds: deque[float] = deque(maxlen=2000)

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
        started = time.monotonic()
        dropped = [listener for listener in targets if not listener.push(event)]
        self.fanout_seconds.append(time.monotonic() - started)
        self.deliveries += len(targets) - len(dropped)
        for listener in dropped:
            self.dropped += 1
            self.remove(listener)
        if event.kind == "room_closed":
            self._move_to_general(event.payload()["room"])

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
