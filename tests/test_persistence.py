"""What outlives the server process: history, rooms and ids, in both modes."""

from __future__ import annotations

import signal

from services import ChatServer


def test_history_and_rooms_survive_a_restart(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("ps"))
    room = unique("kept")
    visitor.create_room(room)
    posted = [visitor.say(f"m{i}") for i in range(3)] + [visitor.say("side", room=room)]
    server.restart()
    assert visitor.history() == posted[:3]
    assert visitor.history(room) == posted[3:]
    assert room in [r["name"] for r in visitor.request("GET", "/api/rooms").json()["rooms"]]


def test_a_killed_server_keeps_every_acknowledged_message(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("kl"))
    posted = [visitor.say(f"k{i}") for i in range(20)]
    server.restart(signal.SIGKILL)
    assert visitor.history() == posted


def test_ids_keep_increasing_across_a_restart(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("ic"))
    before = visitor.say("before")["id"]
    server.restart()
    assert visitor.say("after")["id"] > before


def test_replay_across_a_restart_is_exact(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("rx"))
    with server.stream() as stream:
        stream.ready()
        visitor.say("seen")
        stream.wait_messages(1)
        last_id = stream.last_id()
    missed_before = [visitor.say(f"gap {i}") for i in range(10)]
    server.restart()
    missed_after = [visitor.say(f"later {i}") for i in range(10)]
    with server.stream(last_event_id=last_id) as stream:
        received = stream.wait_messages(20)
        marker = visitor.settle(stream)
    assert received[:20] == missed_before + missed_after
    assert stream.messages() == [*missed_before, *missed_after, marker]


def test_a_stop_ends_open_streams_and_exits_quickly(server: ChatServer) -> None:
    streams = [server.stream() for _ in range(5)]
    for stream in streams:
        stream.ready()
    took = server.stop()
    assert took < 5
    for stream in streams:
        stream.wait_closed(1)
        stream.close()
