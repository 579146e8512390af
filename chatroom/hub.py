"""The local fan-out: every event a process receives, put on each interested listener's buffer.

The broker hands each event to :meth:`Hub.deliver` once per process; from there it costs a
dictionary lookup and a list append per listener. Each listener's buffer is bounded: one
that fills up (a client that stopped reading) is disconnected and resumes later with
``Last-Event-ID``, so it never holds memory or delays anyone else.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event as Signal
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
from .sse import KEEPALIVE
from .storage import GENERAL

if TYPE_CHECKING:
    from .identity import User
    from .storage import Storage

log = logging.getLogger(__name__)


class Listener:
    """One open stream: the channels it follows and the frames waiting to be written.

    A stream starts in the greenlet that serves its request, which writes the first
    frames (retry, presence, replay) through the WSGI server. Then the hub takes the
    connection over (:meth:`Hub.take_over`) and the request's greenlet ends: from then on
    the hub writes the listener's events itself, once per turn of the event loop, every
    frame that arrived since the last turn in one non-blocking ``send()``. A greenlet is
    spawned only while a socket is full, to finish the write. A waiting stream thus costs
    no greenlet, no request objects, no read buffer: a socket and this object.
    """

    __slots__ = (
        "_dirty",
        "_on_close",
        "_signal",
        "_watcher",
        "_writer",
        "channels",
        "chunked",
        "closed",
        "floor",
        "greenlet",
        "last_write",
        "limit",
        "outgoing",
        "partial",
        "pending",
        "sock",
        "stalled",
        "user",
    )

    def __init__(self, channels: Iterable[str], user: User | None, limit: int) -> None:
        self.channels = set(channels)
        self.user = user
        self.limit = limit
        # (id, frame) pairs: the id lets a stream that just replayed skip what it already sent.
        self.pending: list[tuple[int | None, bytes]] = []
        self.closed = False
        # The last id a replay sent: the same event arriving live later is skipped. (With
        # Redis, an event can reach this process after a replay already read it from storage.)
        self.floor = 0
        self.greenlet: gevent.Greenlet | None = gevent.getcurrent()
        self._signal = Signal()
        # Set when the hub takes the connection over.
        self.sock: Any = None
        self.chunked = False
        self._dirty: list[Listener] | None = None
        self._on_close: Callable[[], None] | None = None
        self._writer: gevent.Greenlet | None = None
        self._watcher: Any = None
        # Frames for the hub's next flush; what a send left unwritten (framed already);
        # when something was last written (a keep-alive is due after an interval without).
        self.outgoing: list[bytes] = []
        self.partial = b""
        self.last_write = 0.0
        # The connection failed while the client was not taking data: the kernel gave up
        # (TCP_USER_TIMEOUT) or data was still waiting for it. A slow or vanished client,
        # counted as dropped like one whose buffer filled.
        self.stalled = False

    def hand_over(
        self, sock: Any, chunked: bool, dirty: list[Listener], on_close: Callable[[], None],
        loop: Any,
    ) -> None:
        """Be written by the hub from now on (see :meth:`Hub.take_over`)."""
        self.sock = sock
        self.chunked = chunked
        self.greenlet = None
        self.last_write = time.monotonic()
        self._on_close = on_close
        self._dirty = dirty
        if self.pending:
            self._writer = gevent.spawn(self._drain)
        # A client that closes its connection (a tab closed) is noticed at once, not at
        # the next keep-alive: its socket turns readable.
        self._watcher = loop.io(sock.fileno(), 1)
        self._watcher.start(self._readable)

    def _readable(self) -> None:
        # The watcher is level-triggered: left running, it would fire again on every turn
        # of the loop until the read below runs, a greenlet each time.
        self._watcher.stop()
        gevent.spawn(self.hear)

    def push(self, event: Event) -> bool:
        """Queue ``event``; return False if the buffer is full (the hub then drops it)."""
        if event.id is not None and event.id <= self.floor:
            return True
        return self.queue(event.id, event.frame)

    def queue(self, event_id: int | None, frame: bytes) -> bool:
        """Queue one frame; return False if the buffer is full."""
        if self.closed:
            return True
        if len(self.pending) + len(self.outgoing) >= self.limit:
            return False
        if self._dirty is not None and not self.pending and not self.partial:
            if not self.outgoing:
                self._dirty.append(self)
            self.outgoing.append(frame)
            return True
        if not self.pending:
            self._signal.set()
        self.pending.append((event_id, frame))
        if self._dirty is not None and self._writer is None:
            self._writer = gevent.spawn(self._drain)
        return True

    def flush(self) -> None:
        """Send what arrived since the last flush, without ever waiting for the socket."""
        frames, self.outgoing = self.outgoing, []
        if self.closed or not frames:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if self.pending or self.partial or self._writer is not None:
            # A writer is finishing an earlier write: queue behind it, in order.
            self.pending.append((None, data))
            return
        data = self._framed(data)
        try:
            sent = self.sock.send(data, 0, 0.0)  # timeout 0: never wait
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.lost(exc)  # the client is gone
            return
        self.last_write = time.monotonic()
        if sent < len(data):
            self.partial = data[sent:]
            self._writer = gevent.spawn(self._drain)

    def _framed(self, data: bytes) -> bytes:
        # The WSGI server chose chunked transfer-encoding for the response: keep to it.
        return b"%x\r\n%s\r\n" % (len(data), data) if data and self.chunked else data

    def _drain(self) -> None:
        # Runs only while the socket is full: writes, in order, what the flushes could not.
        try:
            while self.partial or self.pending:
                frames = self._framed(b"".join(frame for _, frame in self.pending))
                self.pending = []
                data, self.partial = self.partial + frames, b""
                self.sock.sendall(data)
                self.last_write = time.monotonic()
        except OSError as exc:
            self.lost(exc, unsent=True)
        finally:
            self._writer = None

    def take(self, timeout: float) -> list[tuple[int | None, bytes]] | None:
        """Wait up to ``timeout`` seconds for events (before the hub takes over).

        Return what is pending ([] if nothing came), or None once the listener is closed.
        """
        if not self.pending and not self.closed:
            self._signal.wait(timeout)
        # What came before the end still goes out (a "kicked" before the session ends).
        if self.closed and not self.pending:
            return None
        batch, self.pending = self.pending, []
        self._signal.clear()
        return batch

    def close(self) -> None:
        """End the stream: at once once the hub has it, else at its greenlet's next wake-up."""
        if self.sock is not None:
            self.shut(goodbye=True)
            return
        self.closed = True
        self._signal.set()

    def hear(self) -> None:
        """The client sent something, or hung up: an event-stream client only ever hangs up."""
        if self.closed:
            return
        try:
            if not self.sock.recv(4096):
                self.lost(None)  # the client hung up (or the kernel gave up: see lost)
                return
        except OSError as exc:
            self.lost(exc)
            return
        if not self.closed:
            self._watcher.start(self._readable)

    def lost(self, exc: OSError | None, unsent: bool = False) -> None:
        """The connection failed: close it, noting whether the client had stalled."""
        # The kernel's error says ETIMEDOUT, or (depending on what it saw last) only a
        # reset; frames still waiting for the client say it the same way.
        waiting = unsent or bool(self.partial or self.pending or self.outgoing)
        self.stalled = (exc is not None and exc.errno == errno.ETIMEDOUT) or waiting
        self.shut()

    def drop(self) -> None:
        """Disconnect a listener whose buffer is full; it resumes with Last-Event-ID."""
        if self.sock is not None:
            self.shut()
            return
        self.close()
        # The stream's greenlet may be stuck writing to a client that stopped reading:
        # only an exception gets it out, and its cleanup then closes the socket.
        if self.greenlet is not None and self.greenlet is not gevent.getcurrent():
            self.greenlet.kill(block=False)

    def shut(self, goodbye: bool = False) -> None:
        """Close the connection the hub holds, once, and run the stream's cleanup."""
        if self.closed:
            return
        self.closed = True
        if goodbye and self.chunked and not self.partial and not self.pending:
            # The end of the chunked body: the browser sees a clean end and reconnects.
            with contextlib.suppress(OSError):
                self.sock.send(b"0\r\n\r\n", 0, 0.0)
        if self._writer is not None and self._writer is not gevent.getcurrent():
            self._writer.kill(block=False)
        if self._watcher is not None:
            self._watcher.stop()
        self.sock.close()
        if self._on_close is not None:
            self._on_close()


class Hub:
    """The listeners of one process, indexed by channel."""

    def __init__(self, keepalive: float = 15.0) -> None:
        self._keepalive = keepalive
        self._ticker: gevent.Greenlet | None = None
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
        self._dirty: list[Listener] = []
        self._flush_due = False
        self._first_queued = 0.0
        self._loop = gevent.get_hub().loop

    def take_over(
        self, listener: Listener, sock: Any, chunked: bool, on_close: Callable[[], None]
    ) -> None:
        """Write ``listener``'s stream from now on to ``sock`` (as HTTP chunks if ``chunked``).

        ``on_close`` runs once when the connection ends, whoever ends it.
        """
        # The cleanup may wait on storage, and a connection can end inside the event
        # loop's own callback (a flush), which must never wait: it runs in a greenlet.
        def closed() -> None:
            if listener.stalled:
                self.dropped += 1
            self._closing.spawn(on_close)

        listener.hand_over(sock, chunked, self._dirty, closed, self._loop)
        if self._ticker is None:
            self._ticker = gevent.spawn(self._keep_alive)

    def _keep_alive(self) -> None:
        # One timer for every stream the hub holds: a comment to each that had nothing
        # written for a whole interval. Writing is also how a dead client is noticed.
        while True:
            gevent.sleep(max(0.05, self._keepalive / 3))
            due = time.monotonic() - self._keepalive
            for listener in list(self._all):
                if listener.sock is None or listener.last_write > due or listener.outgoing:
                    continue
                if not listener.queue(None, KEEPALIVE):
                    self._drop(listener)
            self._schedule_flush()

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
            if event.channel == SESSIONS_CHANNEL:
                self._end_session(event.payload()["session"])
            return
        if not self._dirty:
            self._first_queued = time.monotonic()
        dropped = [listener for listener in targets if not listener.push(event)]
        self._schedule_flush()
        self.deliveries += len(targets) - len(dropped)
        for listener in dropped:
            self._drop(listener)
        if event.kind == "room_closed":
            self._move_to_general(event.payload()["room"])

    def _end_session(self, session: str) -> None:
        # Logout or a kick: the session's streams end cleanly (the end of the body).
        for listener in [x for x in self._all if x.user is not None and x.user.session == session]:
            self.remove(listener)
            if listener.sock is not None:
                listener.flush()  # what came before the end (a "kicked") goes out first
            listener.close()

    def _drop(self, listener: Listener) -> None:
        self.dropped += 1
        self.remove(listener)
        listener.drop()

    def _schedule_flush(self) -> None:
        if self._dirty and not self._flush_due:
            # Once this greenlet yields: events that arrive meanwhile share the flush.
            self._flush_due = True
            self._loop.run_callback(self._flush)

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
            # A private message is filed under both parties' channels: it comes twice.
            if event.id is not None and event.id <= last:
                continue
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
        if self._ticker is not None:
            self._ticker.kill(block=False)
        listeners = list(self._all)
        # Out of the index first: each stream's leave is then announced to other
        # processes, not fanned out to the thousands of streams ending beside it.
        for listener in listeners:
            self.remove(listener)
        for listener in listeners:
            listener.close()
        self._closing.join(timeout=2)
