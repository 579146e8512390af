"""One open stream: the channels it follows and the frames on their way to it.

A stream starts in the greenlet that serves its request, which writes the first frames
(retry, presence, replay) through the WSGI server; frames that arrive meanwhile are
*queued* for that greenlet. Then its connection is handed over (:mod:`.handover`) and
the request's greenlet ends: from then on each of the fan-out's flushes hands the stream
a :class:`~chatroom.handover.Batch` of everything it follows that arrived since the last
one, which its :class:`~chatroom.handover.SocketWriter` sends in one write. A waiting
stream thus costs no greenlet, no request objects, no read buffer: a socket and two small
objects.

A stream ends in one of three ways: :meth:`Listener.end` (the server ends it cleanly: a
logout, a stop), :meth:`Listener.cut` (its buffer is full: a client that stopped reading)
or a failed connection (the client hung up or vanished), noticed by the writer.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event as Signal

from .events import Event
from .handover import Batch, SocketWriter

if TYPE_CHECKING:
    from .identity import User


class Listener:
    """One stream's channels and buffers; bounded to ``limit`` frames in all."""

    __slots__ = (
        "_on_end",
        "_signal",
        "channels",
        "closed",
        "floor",
        "greenlet",
        "limit",
        "queued",
        "stalled",
        "user",
        "writer",
    )

    def __init__(self, channels: Iterable[str], user: User | None, limit: int) -> None:
        self.channels = set(channels)
        self.user = user
        self.limit = limit
        # Before the hand-over: (id, frame) pairs for the request's greenlet; the id lets
        # a stream that just replayed skip what it already sent.
        self.queued: list[tuple[int | None, bytes]] = []
        self.closed = False
        # The last id a replay sent (see replayed_up_to).
        self.floor = 0
        self.greenlet: gevent.Greenlet | None = gevent.getcurrent()
        self._signal = Signal()
        self.writer: SocketWriter | None = None
        self._on_end: Callable[[], None] | None = None
        # The connection failed while the client was not taking data: the kernel gave up
        # (TCP_USER_TIMEOUT) or data was still waiting for it. A slow or vanished client,
        # counted as cut like one whose buffer filled.
        self.stalled = False

    def hand_over(self, sock: Any, chunked: bool, on_end: Callable[[], None], loop: Any) -> None:
        """Be written through ``sock`` from now on (see :meth:`Fanout.take_over`)."""
        self.greenlet = None
        self._on_end = on_end
        self.writer = SocketWriter(sock, chunked, loop, self._lost)
        if self.queued:
            frames, self.queued = self.queued, []
            self.writer.send(Batch.of(b"".join(frame for _, frame in frames), len(frames)))

    def replayed_up_to(self, last_id: int) -> None:
        """A replay sent every event up to ``last_id``: none of them goes out again.

        Live events that arrived while the replay read storage are among them, and with
        Redis an event can reach this process after a replay already read it: the stream
        skips both, here and only here.
        """
        self.floor = last_id
        self.queued = [(i, frame) for i, frame in self.queued if i is None or i > last_id]

    def push(self, event: Event) -> bool:
        """Queue ``event`` for the request's greenlet; return False if the buffer is full
        (the fan-out then cuts the stream)."""
        if self.closed or (event.id is not None and event.id <= self.floor):
            return True
        if len(self.queued) >= self.limit:
            return False
        if not self.queued:
            self._signal.set()
        self.queued.append((event.id, event.frame))
        return True

    def deliver(self, batch: Batch) -> bool:
        """Send the stream what it follows of a flush; return False if the client is so
        far behind that this would overfill its buffer (the fan-out then cuts it)."""
        writer = self.writer
        if writer is None:
            return all(self.push(event) for event in batch.events)
        if batch.first_id is not None and batch.first_id <= self.floor:
            # Just after a replay: what it sent does not go out again.
            kept = [e for e in batch.events if e.id is None or e.id > self.floor]
            if not kept:
                return True
            batch = Batch(kept)
        return writer.send(batch, self.limit)

    def write(self, frame: bytes) -> bool:
        """Send one frame of the stream's own (a keep-alive) after the hand-over; return
        False if the buffer is full."""
        return self.writer.send(Batch.of(frame), self.limit)

    def take(self, timeout: float) -> list[tuple[int | None, bytes]] | None:
        """Wait up to ``timeout`` seconds for frames (before the hand-over).

        Return what is queued ([] if nothing came), or None once the stream has ended.
        """
        if not self.queued and not self.closed:
            self._signal.wait(timeout)
        # What came before the end still goes out (a "kicked" before the session ends).
        if self.closed and not self.queued:
            return None
        batch, self.queued = self.queued, []
        self._signal.clear()
        return batch

    def end(self) -> None:
        """End the stream cleanly (the browser reconnects and resumes)."""
        if self.writer is not None:
            self._finish(goodbye=True)
            return
        self.closed = True
        self._signal.set()

    def cut(self) -> None:
        """Disconnect a listener whose buffer is full; it resumes with Last-Event-ID."""
        if self.writer is not None:
            self._finish()
            return
        self.end()
        # The stream's greenlet may be stuck writing to a client that stopped reading:
        # only an exception gets it out, and its cleanup then closes the socket.
        if self.greenlet is not None and self.greenlet is not gevent.getcurrent():
            self.greenlet.kill(block=False)

    def _lost(self, exc: OSError | None, unsent: bool) -> None:
        # The kernel's error says ETIMEDOUT, or (depending on what it saw last) only a
        # reset; frames still waiting for the client say it the same way.
        waiting = unsent or self.writer.waiting > 0
        self.stalled = (exc is not None and exc.errno == errno.ETIMEDOUT) or waiting
        self._finish()

    def _finish(self, goodbye: bool = False) -> None:
        # Once: close the connection and run the stream's cleanup.
        if self.closed:
            return
        self.closed = True
        self.writer.close(goodbye)
        if self._on_end is not None:
            self._on_end()
