"""/metrics: Prometheus text with the SPEC's names, and figures that follow what happens."""

from __future__ import annotations

import re

import requests

from services import ChatServer


def scrape(server: ChatServer) -> dict[str, float]:
    text = requests.get(server.url + "/metrics", timeout=5).text
    values = {}
    for line in text.splitlines():
        match = re.match(r"^(chatroom_\w+(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def test_metrics_follow_the_chat(start_server, mode, unique) -> None:
    server = start_server(mode, env={"CHATROOM_CLIENT_BUFFER": "5"})
    answer = requests.get(server.url + "/metrics", timeout=5)
    assert answer.headers["Content-Type"].startswith("text/plain")
    start = scrape(server)
    for name in ["chatroom_listeners", "chatroom_events_published_total",
                 "chatroom_deliveries_total", "chatroom_slow_listeners_dropped_total",
                 "chatroom_broker_reconnects_total"]:
        assert name in start, name
    ana = server.visitor(unique("ana"))
    with server.stream() as one, server.stream() as two:
        one.ready()
        two.ready()
        assert scrape(server)["chatroom_listeners"] == 2
        for i in range(3):
            ana.say(f"m{i}")
        one.wait_messages(3)
        two.wait_messages(3)
        now = scrape(server)
    assert now["chatroom_events_published_total"] - start["chatroom_events_published_total"] == 3
    assert now["chatroom_deliveries_total"] - start["chatroom_deliveries_total"] >= 6
    assert now['chatroom_http_requests_total{status="201"}'] >= 3
    ana.post("")
    assert scrape(server)['chatroom_http_requests_total{status="400"}'] >= 1


def test_dropped_slow_listeners_are_counted(start_server, mode, unique) -> None:
    server = start_server(mode, env={"CHATROOM_CLIENT_BUFFER": "5"})
    ana = server.visitor(unique("ana"))
    slow = server.stream(rcvbuf=4096)
    try:
        while scrape(server)["chatroom_slow_listeners_dropped_total"] < 1:
            for _ in range(50):
                ana.say("z" * 2000)
    finally:
        slow.close()
    assert scrape(server)["chatroom_listeners"] == 0


def test_keep_alives_in_a_quiet_room_are_not_counted_as_latency(start_server, unique) -> None:
    # A keep-alive goes out by the clock, seconds after the last message: it says nothing
    # of how fast events are delivered.
    server = start_server("memory", env={"CHATROOM_KEEPALIVE": "0.3"})
    ana = server.visitor(unique("ana"))
    with server.stream() as stream:
        stream.wait_for(lambda fs: fs)
        ana.say("the last word")
        stream.wait_messages(1)
        stream.wait_for(lambda fs: stream.body.count(b": keep-alive\n") >= 3)
        latency = requests.get(server.url + "/api/stats", timeout=5).json()["latency_ms"]
    assert latency["p99"] is not None and latency["p99"] < 200, latency
