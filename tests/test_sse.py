"""The wire format, byte for byte."""

from __future__ import annotations

import pytest

from chatroom import sse

from sse_client import parse_frames


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": "hello"}, b"data: hello\n\n"),
        ({"data": ""}, b"data: \n\n"),
        ({"data": "a\nb"}, b"data: a\ndata: b\n\n"),
        ({"data": "a\r\nb\rc\nd"}, b"data: a\ndata: b\ndata: c\ndata: d\n\n"),
        ({"data": "a\n"}, b"data: a\ndata: \n\n"),
        ({"data": "x\n\ndata: forged\n\nid: 9"},
         b"data: x\ndata: \ndata: data: forged\ndata: \ndata: id: 9\n\n"),
        # Only CR and LF end lines: other Unicode breaks stay inside the data.
        ({"data": "a\u2028b\x0bc\x85d"}, "data: a\u2028b\x0bc\x85d\n\n".encode()),
        ({"data": "héllo ✓"}, "data: héllo ✓\n\n".encode()),
        ({"data": "{}", "event": "message", "id": 7},
         b"id: 7\nevent: message\ndata: {}\n\n"),
        ({"event": "bad\nname", "id": "1\r2", "data": "x"},
         b"id: 12\nevent: badname\ndata: x\n\n"),
        ({"retry": 2000}, b"retry: 2000\n\n"),
        ({}, b"\n"),
    ],
)
def test_encode_is_byte_exact(kwargs: dict, expected: bytes) -> None:
    assert sse.encode(**kwargs) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("keep-alive", b": keep-alive\n\n"), ("", b": \n\n"), ("a\nb", b": a\n: b\n\n")],
)
def test_comment_is_byte_exact(text: str, expected: bytes) -> None:
    assert sse.comment(text) == expected


def test_keepalive_is_a_comment_line_that_ends_no_frame() -> None:
    assert sse.KEEPALIVE == b": keep-alive\n"
    # Before an event, it changes nothing of the event.
    event = sse.encode("x", event="message", id=1)
    assert sse.KEEPALIVE + event == b": keep-alive\n" + event


@pytest.mark.parametrize(
    "text",
    ["plain", "two\nlines", "crlf\r\nand cr\r", "\n\nid: 99\nevent: dm\ndata: {}\n\n",
     "ends with newline\n", "  spaces  ", "\u2028\x0b", ""],
)
def test_any_text_comes_back_as_one_frame(text: str) -> None:
    frames, rest = parse_frames(sse.encode(text, event="message", id=3))
    assert rest == b""
    assert len(frames) == 1
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert (frames[0].event, frames[0].id, frames[0].data) == ("message", "3", expected)
