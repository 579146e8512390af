"""Plumbing shared by the scenarios (Locust does not load files starting with ``_``).

Settings come from the environment: ``CHATROOM_LOAD_ROOM`` (default ``general``),
``CHATROOM_LOAD_PREFIX`` (user names start with it, default ``load``) and
``CHATROOM_LOAD_POST_INTERVAL`` (seconds between a poster's messages, default 1).
The host defaults to http://localhost:5000 (``--host`` overrides it).

Every posted text carries a marker ``lt:<poster>:<seq>:<sent ms>``; listeners use it to
report delivery latency (post to event) as the row ``SSE deliver`` and to detect gaps and
duplicates, which are reported as failures.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from locust import FastHttpUser, events

from _http import dechunk

ROOM = os.environ.get("CHATROOM_LOAD_ROOM", "general")
PREFIX = os.environ.get("CHATROOM_LOAD_PREFIX", "load")
POST_INTERVAL = float(os.environ.get("CHATROOM_LOAD_POST_INTERVAL", "1"))
DEFAULT_HOST = "http://localhost:5000"

# (process id, run id): drawn in each process, since `--processes N` forks after this
# module is imported and every machine of a distributed run imports it on its own.
_run: tuple[int, str] = (0, "")
_numbers = itertools.count(1)
_MARK = re.compile(r"lt:([^:\s]+):(\d+):(\d+)")
_LINE = re.compile(rb"\r\n|\r|\n")


def unique_name(kind: str) -> str:
    """Return a user name no other simulated user of any run has (at most 32 characters)."""
    global _run, _numbers
    if _run[0] != os.getpid():
        _run, _numbers = (os.getpid(), uuid.uuid4().hex[:6]), itertools.count(1)
    return f"{PREFIX}-{kind}-{_run[1]}-{next(_numbers)}"[:32]


def report(name: str, started: float, length: int = 0, error: Exception | str | None = None,
           kind: str = "SSE") -> None:
    """Put one measurement into Locust's statistics as a row of its own."""
    if isinstance(error, str):
        error = RuntimeError(error)
    events.request.fire(request_type=kind, name=name,
                        response_time=(time.time() - started) * 1000,
                        response_length=length, exception=error, context={})


class ChatUser(FastHttpUser):
    """A visitor who logs in with a unique name; the base of every scenario."""

    abstract = True
    host = DEFAULT_HOST
    kind = "user"

    def on_start(self) -> None:
        self.name = unique_name(self.kind)
        self.cookie = ""
        self.sequence = 0
        with self.client.post("/login", json={"username": self.name},
                              catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"login failed: {answer.status_code} {answer.text[:200]}")
                return
            cookie = answer.headers.get("Set-Cookie", "")
            self.cookie = cookie.split(";", 1)[0]

    def post_message(self, room: str = ROOM) -> None:
        """Post the next marked message; a refused one is tried again with the same number."""
        text = f"lt:{self.name}:{self.sequence + 1}:{int(time.time() * 1000)} hello"
        with self.client.post(f"/api/rooms/{room}/messages", json={"text": text},
                              name="/api/rooms/[room]/messages",
                              catch_response=True) as answer:
            if answer.status_code == 201:
                self.sequence += 1
            elif answer.status_code == 429:
                answer.failure("rate limited: start the server with CHATROOM_RATE_LIMIT=off")
            else:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")

    def stream(self, **options: Any) -> Stream:
        """Return a stream reader for this user, following ``ROOM``."""
        return Stream(self.host, self.cookie, **options)


class Stream:
    """``GET /stream`` on a socket of its own, read as EventSource would, and checked.

    Like EventSource, it reconnects with ``Last-Event-ID`` after a drop. It reports each
    delivery's latency, and fails on an id that does not increase or a poster's message
    number that skips (a gap) or repeats (a duplicate).
    """

    def __init__(self, host: str, cookie: str, rcvbuf: int | None = None,
                 read_size: int = 65536, row: str = "SSE deliver") -> None:
        self.row = row
        self.address = urlsplit(host)
        self.cookie = cookie
        self.rcvbuf = rcvbuf
        self.read_size = read_size
        # The last position received ("<epoch>-<id>"), sent back as Last-Event-ID.
        self.last_id: str | None = None
        self.seen: dict[str, int] = {}
        self.sock: socket.socket | None = None

    def connect(self) -> None:
        started = time.time()
        try:
            self.sock = socket.create_connection(
                (self.address.hostname, self.address.port or 80), timeout=60)
            if self.rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            headers = [f"GET /stream?room={ROOM} HTTP/1.1", f"Host: {self.address.netloc}",
                       "Accept: text/event-stream"]
            if self.cookie:
                headers.append(f"Cookie: {self.cookie}")
            if self.last_id is not None:
                headers.append(f"Last-Event-ID: {self.last_id}")
            self.sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
            self._buffer = b""
            head = self._read_head()
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                raise ConnectionError(f"the stream answered {status}")
            self._chunked = b"chunked" in head.lower()
        except (OSError, ValueError, IndexError) as exc:
            report("/stream connect", started, error=exc)
            self.close()
            raise
        report("/stream connect", started)

    def _read_head(self) -> bytes:
        while b"\r\n\r\n" not in self._buffer:
            data = self.sock.recv(self.read_size)
            if not data:
                raise ConnectionError("closed before the headers ended")
            self._buffer += data
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        return head

    def _body(self) -> Iterator[bytes]:
        raw = self._buffer
        while True:
            if self._chunked:
                chunks, raw, ended = dechunk(raw)
                yield from chunks
                if ended:
                    return
            else:
                if raw:
                    yield raw
                raw = b""
            data = self.sock.recv(self.read_size)
            if not data:
                return
            raw += data

    def frames(self) -> Iterator[tuple[str, str]]:
        """Yield (event, data) until the server ends the stream."""
        pending = b""
        for chunk in self._body():
            pending += chunk
            while True:
                match = re.search(rb"(\r\n|\r|\n)(\r\n|\r|\n)", pending)
                if not match:
                    break
                block, pending = pending[:match.start()], pending[match.end():]
                event, data, frame_id = "message", [], None
                for line in _LINE.split(block):
                    name, _, value = line.decode().partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        data.append(value)
                    elif name == "event":
                        event = value
                    elif name == "id":
                        frame_id = value
                if frame_id is not None:
                    self._check_id(frame_id)
                if data:
                    yield event, "\n".join(data)

    def _check_id(self, frame_id: str) -> None:
        epoch, _, number = frame_id.rpartition("-")
        if self.last_id is not None:
            last_epoch, _, last_number = self.last_id.rpartition("-")
            if epoch == last_epoch and int(number) <= int(last_number):
                report("SSE order", time.time(), error=f"id {frame_id} after {self.last_id}")
        self.last_id = frame_id

    def check(self, event: str, data: str) -> None:
        """Report a message's latency, and any gap or duplicate in its poster's sequence."""
        if event != "message":
            return
        found = _MARK.search(json.loads(data)["text"])
        if not found:
            return
        poster, number, sent_ms = found.group(1), int(found.group(2)), int(found.group(3))
        report(self.row, sent_ms / 1000, length=len(data))
        last = self.seen.get(poster)
        if last is not None and number != last + 1:
            problem = "duplicate" if number <= last else f"gap of {number - last - 1}"
            report("SSE continuity", time.time(), error=f"{problem} from {poster}")
        self.seen[poster] = max(number, last or 0)

    def run(self, seconds: float | None = None) -> None:
        """Read and check events (for ``seconds``, or until dropped), reconnecting as needed."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            try:
                self.connect()
                for event, data in self.frames():
                    self.check(event, data)
                    if deadline is not None and time.monotonic() >= deadline:
                        return
            except (OSError, ValueError):
                time.sleep(1)  # EventSource's retry
            finally:
                self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
