"""The stream read by popular Python clients: what they parse equals what was posted."""

from __future__ import annotations

import json
import threading
import time

import httpx
import requests
import sseclient
from httpx_sse import connect_sse

from services import ChatServer


def _post_soon(visitor, texts: list[str]) -> threading.Thread:
    def post() -> None:
        time.sleep(0.5)  # past a keep-alive or two first (CHATROOM_KEEPALIVE=0.2)
        for text in texts:
            visitor.say(text)

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def test_httpx_sse_sees_every_event_and_no_empty_one(start_server, mode, unique) -> None:
    server: ChatServer = start_server(mode, env={"CHATROOM_KEEPALIVE": "0.2"})
    visitor = server.visitor(unique("hx"))
    texts = ["one", "two\nlines", "three"]
    events = []
    with httpx.Client(timeout=10) as client, connect_sse(
        client, "GET", server.url + "/stream?room=general"
    ) as source:
        poster = _post_soon(visitor, texts)
        for event in source.iter_sse():
            events.append(event)
            if sum(e.event == "message" for e in events) == len(texts):
                break
    poster.join()
    # Every event the client reports has data: the retry hint and keep-alives make none.
    assert all(e.data for e in events), [(e.event, e.data) for e in events]
    assert events[0].event == "presence" and events[0].retry == 2000
    messages = [e for e in events if e.event == "message"]
    assert [json.loads(e.data)["text"] for e in messages] == texts
    assert [e.id.rpartition("-")[2] for e in messages] == [
        str(json.loads(e.data)["id"]) for e in messages
    ]


def test_sseclient_py_sees_every_event_and_no_empty_one(start_server, mode, unique) -> None:
    server: ChatServer = start_server(mode, env={"CHATROOM_KEEPALIVE": "0.2"})
    visitor = server.visitor(unique("sc"))
    texts = ["alpha", "beta"]
    response = requests.get(server.url + "/stream?room=general", stream=True, timeout=10,
                            headers={"Accept": "text/event-stream"})
    poster = _post_soon(visitor, texts)
    events = []
    for event in sseclient.SSEClient(response).events():
        events.append(event)
        if sum(e.event == "message" for e in events) == len(texts):
            break
    response.close()
    poster.join()
    assert all(e.data for e in events), [(e.event, e.data) for e in events]
    assert [json.loads(e.data)["text"] for e in events if e.event == "message"] == texts
