"""The app in process, through Werkzeug's test client: no server, no socket.

The fast layer beside the end-to-end tests. A server that does not tell the app its
client's socket (this client is one) still gets a working stream: the request's own
greenlet writes it (views.stream's fallback).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from chatroom import create_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"memory": True, "data_dir": tmp_path, "keepalive": 0.2,
                      "rate_limit": None})
    yield app
    chat = app.extensions["chatroom"]
    chat.fanout.close_all()
    chat.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def read_until(chunks: Iterator[bytes], marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        seen += next(chunks)
    return seen


def test_a_post_and_its_history(client: FlaskClient) -> None:
    assert client.post("/login", json={"username": "ana"}).status_code == 200
    posted = client.post("/api/rooms/general/messages", json={"text": "hello"})
    assert posted.status_code == 201
    history = client.get("/api/rooms/general/messages").get_json()["messages"]
    assert history == [posted.get_json()]


def test_without_the_socket_the_stream_goes_through_the_request(
    app: Flask, client: FlaskClient
) -> None:
    stream = client.get("/stream", buffered=False)
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
    chunks = iter(stream.response)
    assert next(chunks).startswith(b"event: presence\nretry: 2000\n")
    poster = app.test_client()
    poster.post("/login", json={"username": "bo"})
    poster.post("/api/rooms/general/messages", json={"text": "through the request"})
    assert b'"text":"through the request"' in read_until(chunks, b"through the request")
    assert b": keep-alive\n" in read_until(chunks, b"keep-alive")
    stream.close()
    assert len(app.extensions["chatroom"].fanout) == 0


def test_junk_cookies_beside_a_session_are_not_remembered(app: Flask, client: FlaskClient) -> None:
    # A visitor can send any Cookie header around its session cookie: what the server
    # remembers of verified sessions must not grow with it.
    assert client.post("/login", json={"username": "ana"}).status_code == 200
    session = client.get_cookie("chatroom_session").value
    bare = app.test_client(use_cookies=False)  # sends only the Cookie headers below
    for n in range(50):
        answer = bare.get(
            "/api/rooms", headers={"Cookie": f"junk{n}={'x' * 4000}; chatroom_session={session}"}
        )
        assert answer.status_code == 200
    assert len(app.session_interface._verified) == 1
    swap = "A" if session[-5] != "A" else "B"
    forged = bare.post(
        "/api/rooms/general/messages", json={"text": "as someone"},
        headers={"Cookie": f"chatroom_session={session[:-5]}{swap}{session[-4:]}"},
    )
    assert forged.status_code == 401
    assert len(app.session_interface._verified) == 1
