"""The request header reader on its own: what it keeps, what it refuses, how much it reads."""

from __future__ import annotations

import io

import pytest

from chatroom.request_headers import BadHeaders, HeadersTooLarge, RequestHeaders


def _read(raw: bytes, most: int = 16 * 1024) -> tuple[RequestHeaders, io.BytesIO]:
    rfile = io.BytesIO(raw)
    return RequestHeaders.read(rfile, most), rfile


def test_fields_keep_their_order_and_are_found_in_any_case() -> None:
    headers, rfile = _read(b"Host: a\r\nX-Two: 1\r\nx-two:  2 \r\nContent-Type: text/plain\r\n"
                           b"\r\nthe body")
    assert list(headers.headers) == ["Host: a\r\n", "X-Two: 1\r\n", "x-two: 2\r\n",
                                     "Content-Type: text/plain\r\n"]
    assert headers.get("x-TWO") == "1"
    assert headers.getheader("missing", "none") == "none"
    assert headers.typeheader == "text/plain"
    del headers["X-TWO"]
    assert headers.get("x-two") is None
    assert rfile.read() == b"the body"  # not a byte past the headers


def test_bare_line_feeds_end_lines_too() -> None:
    headers, _ = _read(b"Host: a\nAccept: */*\n\n")
    assert headers.get("accept") == "*/*"


def test_the_same_length_twice_is_one_length() -> None:
    headers, _ = _read(b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n")
    assert headers.get("content-length") == "2"


@pytest.mark.parametrize("raw", [
    b"X-A: 1\r\n folded\r\n\r\n", b"X-A: 1\r\n\tfolded\r\n\r\n", b"X-A : 1\r\n\r\n",
    b" X-A: 1\r\n\r\n", b"no colon\r\n\r\n", b": no name\r\n\r\n", b"X-A: 1\r2\r\n\r\n",
    b"X-A: \x00\r\n\r\n", b"Content-Length: 1\r\ncontent-length: 2\r\n\r\n",
])
def test_what_http_says_to_refuse_is_refused(raw: bytes) -> None:
    with pytest.raises(BadHeaders):
        _read(raw)


def test_no_more_than_the_limit_is_read() -> None:
    endless = b"X-A: " + b"a" * 100_000
    with pytest.raises(HeadersTooLarge):
        _read(endless, most=1000)
    rfile = io.BytesIO(endless)
    with pytest.raises(HeadersTooLarge):
        RequestHeaders.read(rfile, 1000)
    assert rfile.tell() <= 1001
    with pytest.raises(HeadersTooLarge):
        _read(b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n")
    headers, _ = _read(b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n")
    assert headers.get("x-99") == "1"


def test_headers_exactly_at_the_limit_fit_and_one_byte_more_does_not() -> None:
    raw = b"X-A: " + b"a" * 13 + b"\r\n\r\n"  # 22 bytes, the empty line's included
    headers, _ = _read(raw, most=22)
    assert headers.get("x-a") == "a" * 13
    with pytest.raises(HeadersTooLarge):
        _read(raw, most=21)


def test_a_client_that_hangs_up_inside_the_headers_is_a_connection_error() -> None:
    with pytest.raises(ConnectionAbortedError):
        _read(b"Host: a\r\nX-A: 1")
    with pytest.raises(ConnectionAbortedError):
        _read(b"Host: a\r\n")
