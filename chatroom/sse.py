"""The Server-Sent Events wire format: bytes only, no Flask, no sockets.

See https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

import re

# The spec ends a line at CRLF, CR or LF and nothing else: str.splitlines() would also
# split on \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029 and change the text a client sees.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NEWLINES = re.compile(r"[\r\n]")

# A comment line alone, with no blank line after it: the blank line would end an empty
# frame, which the spec says to ignore but some clients (httpx-sse 0.4) report as an event
# with no data. Whatever comes next still parses: comment lines never join a frame.
KEEPALIVE = b": keep-alive\n"


def encode(
    data: str | None = None,
    *,
    event: str | None = None,
    id: int | str | None = None,
    retry: int | None = None,
) -> bytes:
    """Return one complete frame (ending in a blank line) carrying the given fields.

    ``data`` may hold any text: each of its lines becomes a ``data:`` line, so a newline
    or a ``data:`` inside it can never start another frame. Newlines are removed from
    ``id`` and ``event``, where the wire format has no way to carry them.
    """
    parts: list[str] = []
    if id is not None:
        parts.append(f"id: {_NEWLINES.sub('', str(id))}\n")
    if event is not None:
        parts.append(f"event: {_NEWLINES.sub('', event)}\n")
    if retry is not None:
        parts.append(f"retry: {int(retry)}\n")
    if data is not None:
        parts.extend(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def comment(text: str = "") -> bytes:
    """Return a comment frame, which clients ignore; each line of ``text`` starts with ``:``."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)).encode("utf-8") + b"\n"
