"""The hand-over: after its first frames, a stream's connection leaves the WSGI server.

This module is the one place that knows a stream's socket. The contract with the server:

1. A stream's request is served like any other until its first frames (the retry hint,
   presence, a replay) have gone out through the server, so the status line, the headers
   and the choice of framing are the server's own.
2. The app then needs the client's socket. Ours (:class:`~chatroom.connections.ChatHandler`,
   on gevent's pywsgi) puts it in ``environ["chatroom.socket"]`` and says whether it framed
   the response as HTTP chunks (``environ["chatroom.chunked"]()``, pywsgi's own decision).
   gunicorn's gevent worker puts it in ``environ["gunicorn.socket"]`` and does not say, but
   chunks every HTTP/1.1 response without a Content-Length, which a stream is. With a
   server that tells neither, the stream stays in its request (views.stream's fallback).
3. The app duplicates the descriptor: the duplicate is the app's, the original stays the
   server's.
4. The request ends by raising :class:`StreamHandedOver`, a ConnectionResetError, which
   both servers take for a client that hung up: pywsgi counts ECONNRESET among its
   ``ignored_socket_errors`` (an API gevent documents as provisional) and logs nothing,
   gunicorn logs it at debug level. Each closes its own descriptor; the connection lives
   on through the duplicate (tests/test_workers.py checks gunicorn prints no traceback).
5. From then on a :class:`SocketWriter` writes the stream: chunks if the server chose
   them, never a blocking write in the event loop, the last chunk when the stream ends
   cleanly, and a read watcher that notices at once a client that hung up.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

if TYPE_CHECKING:
    from .events import Event

LAST_CHUNK = b"0\r\n\r\n"
# Called once when the connection fails: the error (None: the client hung up) and
# whether bytes were still waiting for the client.
Lost = Callable[[OSError | None, bool], None]


class StreamHandedOver(ConnectionResetError):
    """Ends a stream's request once its connection is the app's (see the module)."""

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, "stream handed over to the app")


def request_socket(environ: dict[str, Any]) -> Any:
    """Return the client's socket, if the server tells it (ours and gunicorn's do)."""
    return environ.get("chatroom.socket") or environ.get("gunicorn.socket")


def response_chunked(environ: dict[str, Any]) -> bool:
    """Say whether the server framed this response as HTTP chunks (ask after it began)."""
    told = environ.get("chatroom.chunked")
    if told is not None:
        return told()
    # gunicorn: chunked for HTTP/1.1 when there is no Content-Length.
    return environ.get("SERVER_PROTOCOL") != "HTTP/1.0"


def chunk(data: bytes) -> bytes:
    """Frame ``data`` as one HTTP chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Batch:
    """Frames that go to many streams in one write each: joined and framed once for all."""

    __slots__ = ("at", "chunk", "data", "events", "first_id", "frames")

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        data = events[0].frame if len(events) == 1 else b"".join(e.frame for e in events)
        # The lowest id among them: a stream that replayed past it skips some.
        self._set(data, len(events), next((e.id for e in events if e.id is not None), None))

    @classmethod
    def of(cls, data: bytes, frames: int = 1) -> Batch:
        """Frames of one stream's own (a keep-alive, what waited for its hand-over)."""
        batch = cls.__new__(cls)
        batch.events = []
        batch._set(data, frames, None)
        return batch

    def _set(self, data: bytes, frames: int, first_id: int | None) -> None:
        self.data = data
        # The same bytes as one HTTP chunk: nearly every stream is chunked.
        self.chunk = chunk(data)
        self.frames = frames
        self.first_id = first_id
        # One clock reading for every write of it, as the last write of each stream.
        self.at = time.monotonic()


class SocketWriter:
    """Writes one handed-over stream to its socket, without ever waiting in the event loop.

    A write sends what the socket takes at once; what it does not take waits, in order,
    in a backlog that a greenlet of its own finishes writing (the only time a stream
    costs a greenlet).
    """

    __slots__ = ("_backlog", "_chunked", "_lost", "_raw", "_sock", "_watcher", "closed",
                 "last_write", "sender", "waiting")

    def __init__(self, sock: Any, chunked: bool, loop: Any, lost: Lost) -> None:
        self._sock = sock
        # The non-blocking socket gevent wraps: a flush writes to it without the wrapper's
        # code in between (a send that would block raises BlockingIOError at once).
        self._raw = sock._sock
        self._chunked = chunked
        self._lost = lost
        # Framed bytes the socket has not taken yet (a list only while there are some: a
        # waiting stream should cost as little as possible).
        self._backlog: list[bytes] | None = None
        # How many frames wait in the backlog for a client that is not taking data.
        self.waiting = 0
        # The greenlet finishing a blocked write, while there is one.
        self.sender: gevent.Greenlet | None = None
        self.closed = False
        self.last_write = time.monotonic()
        # A client that closes its connection (a tab closed) makes its socket readable.
        self._watcher = loop.io(sock.fileno(), 1)
        self._watcher.start(self._readable)

    def send(self, batch: Batch, limit: int | None = None) -> bool:
        """Send ``batch`` as one chunk: now, as far as the socket takes it, the rest later.

        Return False, sending nothing, if frames already wait for the client and this
        would make more than ``limit`` of them (a client so far behind is cut). A client
        that keeps up takes a flush of any size.
        """
        # One call per listener per flush, the fan-out's hottest code: the common case
        # (nothing waiting, the socket takes it all) reads as little as it can.
        if self.closed:
            return True
        data = batch.chunk if self._chunked else batch.data
        if self.sender is not None:
            if limit is not None and self.waiting + batch.frames > limit:
                return False
            self._backlog.append(data)  # the sender writes it after what it has
            self.waiting += batch.frames
            return True
        try:
            sent = self._raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._lost(exc, False)
            return True
        self.last_write = batch.at
        if sent < len(data):
            self._backlog = [data[sent:]]
            self.waiting = batch.frames
            self.sender = gevent.spawn(self._send_backlog)
        return True

    def _send_backlog(self) -> None:
        try:
            while self._backlog:
                data, frames = b"".join(self._backlog), self.waiting
                self._backlog = []
                self._sock.sendall(data)
                self.waiting -= frames
                self.last_write = time.monotonic()
        except OSError as exc:
            self._lost(exc, True)
        finally:
            self.sender = None
            self._backlog = None
            self.waiting = 0

    def _readable(self) -> None:
        # The watcher is level-triggered: left running, it would fire again on every turn
        # of the loop until the read below runs, a greenlet each time.
        self._watcher.stop()
        gevent.spawn(self._read)

    def _read(self) -> None:
        # An event-stream client only ever hangs up; anything it sends is read and ignored.
        if self.closed:
            return
        try:
            if not self._sock.recv(4096):
                self._lost(None, False)  # hung up (or the kernel gave up on it)
                return
        except OSError as exc:
            self._lost(exc, False)
            return
        if not self.closed:
            self._watcher.start(self._readable)

    def close(self, goodbye: bool = False) -> None:
        """Close the connection, once; with ``goodbye``, end the body properly first.

        The last chunk tells the browser the stream ended (it reconnects at once); it is
        sent only if nothing is waiting, as it must come after everything else.
        """
        if self.closed:
            return
        self.closed = True
        if goodbye and self._chunked and not self.waiting:
            with contextlib.suppress(OSError):
                self._sock.send(LAST_CHUNK, 0, 0.0)
        if self.sender is not None and self.sender is not gevent.getcurrent():
            self.sender.kill(block=False)
        self._watcher.stop()
        self._sock.close()
