"""A request's header lines, read straight from the connection's buffer.

pywsgi parses headers with the standard library's e-mail parser, which takes up to 100
lines of 64 KiB each before the server can check their size, and a browser's dozen lines
took twice as long as reading them directly, all of it before a post's event can go out
to anyone. :class:`RequestHeaders` reads the lines with the server's limits
checked as it goes (16 KiB and 100 lines in all) and offers what pywsgi asks of its
headers object. What HTTP/1.1 says a server must refuse is refused: a line folded onto
the one before, a name with a space before its colon, a line with no colon, a control
character in a value, two different lengths.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Past this many header lines a request is refused (http.client's own limit).
MOST_LINES = 100
_LINE_ENDS = (b"\r\n", b"\n")


class BadHeaders(ValueError):
    """The header lines are not HTTP's (answered 400)."""


class HeadersTooLarge(BadHeaders):
    """The header lines pass the server's limit (answered 431)."""


class RequestHeaders:
    """A request's header fields, in order, looked up by name in any case."""

    __slots__ = ("_fields", "status")

    def __init__(self, fields: list[tuple[str, str, str]]) -> None:
        # (name in lower case, name as sent, value): pywsgi looks names up several times
        # a request, and each line is lowered once.
        self._fields = fields
        # pywsgi refuses a request whose headers object has a status; errors raise here.
        self.status = ""

    @classmethod
    def read(cls, rfile: Any, most_bytes: int) -> RequestHeaders:
        """Read header lines from ``rfile`` up to the empty line that ends them, in
        ``most_bytes`` at most (that line included)."""
        fields: list[tuple[str, str, str]] = []
        left = most_bytes
        while True:
            line = rfile.readline(left + 1)
            if len(line) > left:
                raise HeadersTooLarge("the request's headers are too large")
            left -= len(line)
            if line in _LINE_ENDS:
                if len({v for k, _, v in fields if k == "content-length"}) > 1:
                    # Which body length holds? Two parsers could each pick another.
                    raise BadHeaders("two different Content-Length headers")
                return cls(fields)
            if not line.endswith(b"\n"):
                raise ConnectionAbortedError("the client hung up inside the headers")
            if len(fields) == MOST_LINES:
                raise HeadersTooLarge(f"more than {MOST_LINES} header lines")
            name, colon, value = line.partition(b":")
            if not colon or not name or name[-1:] in b" \t" or name[:1] in b" \t":
                raise BadHeaders(f"not a header line: {line[:40]!r}")
            value = value.strip(b" \t\r\n")
            if b"\r" in value or b"\0" in value:
                raise BadHeaders(f"a control character in header {name[:40]!r}")
            text = name.decode("latin-1")
            fields.append((text.lower(), text, value.decode("latin-1")))

    def get(self, name: str, default: Any = None) -> Any:
        """Return the first value of header ``name``, or ``default``."""
        name = name.lower()
        for key, _, value in self._fields:
            if key == name:
                return value
        return default

    getheader = get

    def __delitem__(self, name: str) -> None:
        name = name.lower()
        self._fields = [field for field in self._fields if field[0] != name]

    @property
    def headers(self) -> Iterator[str]:
        """The lines as pywsgi builds the WSGI environment from them."""
        for _, key, value in self._fields:
            yield f"{key}: {value}\r\n"

    @property
    def typeheader(self) -> str | None:
        return self.get("content-type")
