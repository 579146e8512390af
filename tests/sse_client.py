"""A test client for event streams on a raw socket: exact bytes in, parsed frames out.

It reads what a browser's EventSource would, but lets a test look at every byte, stop
reading (a slow client) or drop the connection at a chosen moment.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from _http import dechunk

_LINE = re.compile(rb"\r\n|\r|\n")


@dataclass
class Frame:
    """One dispatched frame: its fields as the SSE spec's parser would see them."""

    id: str | None = None
    event: str | None = None
    data_lines: list[str] = field(default_factory=list)
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def data(self) -> str:
        return "\n".join(self.data_lines)

    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def number(self) -> int | None:
        """The JSON id inside the ``<epoch>-<id>`` position, or None without an id."""
        return None if self.id is None else int(self.id.rpartition("-")[2])

    @property
    def epoch(self) -> str | None:
        return None if self.id is None else self.id.rpartition("-")[0]


def parse_frames(raw: bytes) -> tuple[list[Frame], bytes]:
    """Split ``raw`` into complete frames and the unfinished rest."""
    frames = []
    while True:
        match = re.search(rb"(\r\n|\r|\n)(\r\n|\r|\n)", raw)
        if not match:
            return frames, raw
        block, raw = raw[: match.start()], raw[match.end() :]
        frame = Frame()
        for line in _LINE.split(block):
            text = line.decode("utf-8")
            if text.startswith(":"):
                frame.comments.append(text[1:].lstrip(" "))
                continue
            name, sep, value = text.partition(":")
            if sep and value.startswith(" "):
                value = value[1:]
            if name == "data":
                frame.data_lines.append(value)
            elif name == "event":
                frame.event = value
            elif name == "id":
                frame.id = value
            elif name == "retry":
                frame.retry = int(value)
        frames.append(frame)


class SSEStream:
    """An open ``GET`` on an event stream, read through a raw HTTP/1.1 socket."""

    def __init__(
        self,
        url: str,
        cookie: str | None = None,
        last_event_id: int | str | None = None,
        rcvbuf: int | None = None,
        timeout: float = 10.0,
        source: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source is not None:
            self.sock.bind((source, 0))
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((parts.hostname, parts.port))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Accept: text/event-stream"]
        if cookie:
            lines.append(f"Cookie: {cookie}")
        if last_event_id is not None:
            lines.append(f"Last-Event-ID: {last_event_id}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._buf = b""
        self.body = b""  # every body byte received so far, exactly as sent
        self._pending = b""
        self.closed = False
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = self.headers.get("transfer-encoding") == "chunked"
        self.frames: list[Frame] = []
        self._feed()  # the first frames may have come with the headers

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
        return data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buf:
            data = self._recv()
            if not data:
                raise ConnectionError("closed before the headers ended")
            self._buf += data
        head, _, self._buf = self._buf.partition(marker)
        return head

    def _pump(self, timeout: float) -> bool:
        """Read what arrives within ``timeout``; return False if the server closed."""
        self.sock.settimeout(timeout)
        try:
            data = self._recv()
        except TimeoutError:
            return True
        if not data:
            return False
        self._buf += data
        self._feed()
        return not self.closed

    def _feed(self) -> None:
        """Move complete body bytes out of the socket buffer and parse them into frames."""
        if not self._chunked:
            self.body += self._buf
            self._pending += self._buf
            self._buf = b""
        else:
            chunks, self._buf, ended = dechunk(self._buf)
            self.closed = self.closed or ended
            for chunk in chunks:
                self.body += chunk
                self._pending += chunk
        frames, self._pending = parse_frames(self._pending)
        self.frames.extend(frames)

    def read_for(self, seconds: float) -> list[Frame]:
        """Read for ``seconds`` (or until closed); return every frame seen so far."""
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            if not self._pump(max(0.01, deadline - time.monotonic())):
                break
        return self.frames

    def wait_for(self, predicate, timeout: float = 10.0) -> list[Frame]:
        """Read until ``predicate(frames)`` holds; fail the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate(self.frames):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; frames so far: {self.frames[-5:]}")
            if not self._pump(min(left, 0.5)) and not predicate(self.frames):
                raise AssertionError(f"stream closed; frames so far: {self.frames[-5:]}")
        return self.frames

    def wait_closed(self, timeout: float = 10.0) -> list[Frame]:
        """Read until the server ends the stream; fail the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"still open; frames so far: {self.frames[-5:]}")
            self._pump(min(left, 0.5))
        return self.frames

    def ready(self, timeout: float = 10.0) -> SSEStream:
        """Wait for the presence snapshot, the first event: the stream is then followed."""
        self.wait_for(lambda fs: any(f.event == "presence" for f in fs), timeout)
        return self

    def messages(self, kind: str = "message") -> list[dict]:
        """Return the data of every frame of ``kind`` received so far."""
        return [f.json() for f in self.frames if f.event == kind]

    def wait_messages(self, count: int, timeout: float = 10.0, kind: str = "message") -> list[dict]:
        """Read until ``count`` frames of ``kind`` arrived; return their data."""
        self.wait_for(lambda fs: sum(f.event == kind for f in fs) >= count, timeout)
        return self.messages(kind)

    def last_id(self) -> str | None:
        """Return the id a browser would send as Last-Event-ID now."""
        ids = [f.id for f in self.frames if f.id is not None]
        return ids[-1] if ids else None

    def last_number(self) -> int:
        """Return the JSON id of the last event with an id (0 if none came)."""
        numbers = [f.number for f in self.frames if f.id is not None]
        return numbers[-1] if numbers else 0

    def close(self) -> None:
        self.sock.close()
        self.closed = True

    def __enter__(self) -> SSEStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
