"""HTTP/1.1 chunked bodies, read incrementally: shared by the load scenarios and the tests."""

from __future__ import annotations


def dechunk(raw: bytes) -> tuple[list[bytes], bytes, bool]:
    """Split ``raw`` into complete chunks; return them, the unfinished rest, and whether
    the terminating zero-length chunk was seen."""
    chunks = []
    while True:
        size_line, sep, rest = raw.partition(b"\r\n")
        if not sep:
            return chunks, raw, False
        size = int(size_line.split(b";")[0], 16)
        if len(rest) < size + 2:
            return chunks, raw, False
        if size == 0:
            return chunks, b"", True
        chunks.append(rest[:size])
        raw = rest[size + 2 :]
