"""Presence: who is online in each room, live, across processes."""

from __future__ import annotations

import time

from services import ChatServer


def _wait_for_user(stream, kind: str, user: str, timeout: float = 10) -> dict:
    """Wait for a join or leave of ``user`` (a stream also hears its own user's join)."""
    stream.wait_for(
        lambda fs: any(f.event == kind and f.json()["user"] == user for f in fs), timeout
    )
    return next(m for m in stream.messages(kind) if m["user"] == user)


def _fast(start_server, mode: str, **env: str) -> ChatServer:
    return start_server(mode, env={"CHATROOM_KEEPALIVE": "0.3", **env})


def test_a_presence_snapshot_comes_first(server: ChatServer, unique) -> None:
    ana = server.visitor(unique("ana"))
    with ana.stream() as stream:
        first = stream.wait_for(lambda fs: any(f.event == "presence" for f in fs))
    frames = [f for f in first if f.event]
    assert frames[0].event == "presence"
    assert frames[0].id is None
    assert frames[0].json() == {"room": "general", "online": [ana.name]}


def test_join_and_leave_reach_others_and_counts_follow(start_server, mode, unique) -> None:
    server = _fast(start_server, mode)
    watcher = server.visitor(unique("wat"))
    ana = server.visitor(unique("ana"))
    with watcher.stream() as watching:
        watching.ready()
        with ana.stream():
            joined = _wait_for_user(watching, "join", ana.name)
            assert joined["room"] == "general"
            assert sorted(joined["online"]) == sorted([watcher.name, ana.name])
            presence = ana.request("GET", "/api/rooms/general/presence").json()
            assert sorted(presence["online"]) == sorted([watcher.name, ana.name])
            rooms = ana.request("GET", "/api/rooms").json()["rooms"]
            assert rooms[0]["online"] == 2
        began = time.monotonic()
        left = _wait_for_user(watching, "leave", ana.name, timeout=20)
        # A dead connection is gone within 2 × keep-alive + 10 s.
        assert time.monotonic() - began < 2 * 0.3 + 10
    assert left["online"] == [watcher.name]
    assert server.visitor().request("GET", "/api/rooms").json()["rooms"][0]["online"] <= 1


def test_a_reload_announces_nothing(start_server, mode, unique) -> None:
    server = _fast(start_server, mode)
    watcher = server.visitor(unique("wat"))
    ana = server.visitor(unique("ana"))
    with watcher.stream() as watching:
        with ana.stream():
            _wait_for_user(watching, "join", ana.name)
        with ana.stream() as again:  # the page reloads at once
            again.ready()
        with ana.stream() as third:
            third.ready()
            ana.settle(watching)
    assert [m["user"] for m in watching.messages("join")].count(ana.name) == 1
    assert watching.messages("leave") == []


def test_several_tabs_count_once(server: ChatServer, unique) -> None:
    ana = server.visitor(unique("ana"))
    with ana.stream(), ana.stream(), ana.stream() as third:
        third.ready()
        online = ana.request("GET", "/api/rooms/general/presence").json()["online"]
    assert online == [ana.name]


def test_anonymous_listeners_are_not_online(server: ChatServer) -> None:
    with server.stream() as stream:
        stream.ready()
        assert server.visitor().request("GET", "/api/rooms/general/presence").json() == {
            "room": "general", "online": []}
        assert server.health()["listeners"] == 1


def test_presence_of_an_unknown_room_is_404(server: ChatServer) -> None:
    answer = server.visitor().request("GET", "/api/rooms/nowhere/presence")
    assert answer.status_code == 404


def test_presence_is_shared_by_processes_on_one_redis(start_server, unique) -> None:
    first, second = start_server("redis"), start_server("redis")
    ana = first.visitor(unique("ana"))
    bo = second.visitor(unique("bo"))
    with bo.stream() as on_second:
        on_second.ready()
        with ana.stream() as on_first:
            _wait_for_user(on_second, "join", ana.name)
            online = second.visitor().request("GET", "/api/rooms/general/presence").json()
            assert sorted(online["online"]) == sorted([ana.name, bo.name])
            snapshot = on_first.wait_messages(1, kind="presence")[0]
            assert sorted(snapshot["online"]) == sorted([ana.name, bo.name])


def test_a_closed_tab_leaves_without_waiting_for_a_keepalive(server: ChatServer, unique) -> None:
    # The default keep-alive is 15 s: the leave comes after the grace period alone.
    watcher, ana = server.visitor(unique("wat")), server.visitor(unique("ana"))
    with watcher.stream() as watching:
        with ana.stream():
            _wait_for_user(watching, "join", ana.name)
        began = time.monotonic()
        _wait_for_user(watching, "leave", ana.name, timeout=12)
    assert time.monotonic() - began < 10
