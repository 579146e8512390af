"""The event stream: headers at once, ids, keep-alives, exact replay, bounded buffers."""

from __future__ import annotations

import threading
import time

import requests

from services import ChatServer


def test_headers_and_retry_arrive_at_once(server: ChatServer) -> None:
    began = time.monotonic()
    with server.stream("room=general") as stream:
        stream.wait_for(lambda frames: len(frames) >= 1, timeout=2)
        assert time.monotonic() - began < 1.5
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-store"
        assert stream.headers["x-accel-buffering"] == "no"
        assert stream.frames[0].retry is not None and stream.frames[0].retry > 0


def test_no_room_means_general(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("gn"))
    with server.stream() as stream:
        stream.ready()
        visitor.say("to general")
        assert stream.wait_messages(1)[0]["text"] == "to general"


def test_message_frames_carry_ids_and_the_message(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("fr"))
    with visitor.stream("room=general") as stream:
        stream.ready()
        sent = visitor.say("framed")
        stream.wait_messages(1)
    frame = next(f for f in stream.frames if f.event == "message")
    assert frame.number == sent["id"]
    assert frame.id == f"{frame.epoch}-{sent['id']}" and frame.epoch
    assert frame.json() == sent


def test_no_text_can_forge_a_frame(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("fg"))
    evil = "x\n\nid: 999999\nevent: room_closed\ndata: {\"room\":\"general\"}\r\n\r\ndata: y\rz"
    with server.stream() as stream:
        stream.ready()
        visitor.say(evil)
        visitor.say("next")
        stream.wait_messages(2)
    assert [f.event for f in stream.frames[1:]] == ["message", "message"]
    assert stream.messages()[0]["text"] == evil.strip()
    assert "999999" not in [f.id for f in stream.frames]


def test_keepalive_comments_arrive(start_server, mode) -> None:
    server = start_server(mode, env={"CHATROOM_KEEPALIVE": "0.2"})
    with server.stream() as stream:
        stream.wait_for(lambda fs: stream.body.count(b": keep-alive\n") >= 3)


def test_a_stream_follows_several_rooms(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("sv"))
    a, b, c = unique("a"), unique("b"), unique("c")
    for room in (a, b, c):
        visitor.create_room(room)
    with server.stream(f"room={a}&room={b}") as stream:
        stream.ready()
        for room in (a, c, b):
            visitor.say(f"in {room}", room=room)
        received = stream.wait_messages(2)
        visitor.settle(stream, room=a)
    assert [m["room"] for m in stream.messages()] == [a, b, a]  # the last is the marker
    assert received[0]["id"] < received[1]["id"]


def test_unknown_rooms_are_refused(server: ChatServer) -> None:
    answer = requests.get(server.url + "/stream?room=nowhere", timeout=5)
    assert answer.status_code == 404
    assert answer.json()["code"] == "unknown_room"


def test_replay_sends_exactly_the_missed_events(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("rp"))
    with server.stream() as first:
        first.ready()
        for i in range(5):
            visitor.say(f"before {i}")
        first.wait_messages(5)
        last_id = first.last_id()
    missed = [visitor.say(f"missed {i}") for i in range(50)]
    with server.stream(last_event_id=last_id) as again:
        again.wait_messages(50)
        visitor.say("live")
        received = again.wait_messages(51)
        marker = visitor.settle(again)
    assert received[:50] == missed
    assert received[50]["text"] == "live"
    assert again.messages()[51:] == [marker]


def test_replay_by_query_argument(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("qa"))
    first = visitor.say("one")
    second = visitor.say("two")
    with server.stream(f"room=general&last_event_id={first['id']}") as stream:
        assert stream.wait_messages(1) == [second]


def test_replay_merges_rooms_and_room_events_in_id_order(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("mg"))
    side = unique("side")
    start = visitor.say("start")["id"]
    visitor.create_room(side)
    visitor.say("g1")
    visitor.say("s1", room=side)
    visitor.say("g2")
    with server.stream(f"room=general&room={side}", last_event_id=start) as stream:
        stream.wait_for(lambda fs: len([f for f in fs if f.id]) >= 4)
        visitor.settle(stream)
    events = [(f.event, f.json().get("text") or f.json()["room"]) for f in stream.frames if f.id]
    assert events == [("room_created", side), ("message", "g1"), ("message", "s1"),
                      ("message", "g2"), ("message", "(marker)")]
    ids = [f.number for f in stream.frames if f.id]
    assert ids == sorted(ids)


def test_reconnecting_under_load_loses_and_repeats_nothing(server: ChatServer, unique) -> None:
    """A listener that drops and resumes again and again while messages keep coming."""
    poster = server.visitor(unique("ld"))
    posted: list[int] = []
    stop = threading.Event()

    def post_continuously() -> None:
        while not stop.is_set() and len(posted) < 400:
            posted.append(poster.say(f"p{len(posted)}")["id"])

    received: list[int] = []
    last_id = poster.say("origin")["id"]
    thread = threading.Thread(target=post_continuously)
    thread.start()
    try:
        for _ in range(12):
            with server.stream(last_event_id=last_id) as stream:
                stream.read_for(0.15)
                received += [m["id"] for m in stream.messages()]
                last_id = stream.last_id() or last_id
    finally:
        stop.set()
        thread.join()
    with server.stream(last_event_id=last_id) as stream:
        if int(str(last_id).rpartition("-")[2]) < posted[-1]:
            stream.wait_for(lambda fs: stream.last_number() >= posted[-1])
        marker = poster.settle(stream)
        received += [m["id"] for m in stream.messages() if m != marker]
    assert len(posted) > 20
    assert received == posted


def test_an_id_from_an_emptied_store_replays_everything_retained(
    start_server, mode, unique
) -> None:
    # A browser that saw events of a chat whose data was then lost (a new data folder, a
    # flushed Redis) resumes with an id of the old epoch: it gets all the new life holds.
    server = start_server(mode)
    visitor = server.visitor(unique("fu"))
    posted = [visitor.say(f"new life {i}") for i in range(3)]
    with server.stream(last_event_id="oldepoch-10000") as stream:
        assert stream.wait_messages(3) == posted
        resumed_from = stream.last_id()
    with server.stream(last_event_id=resumed_from) as again:
        again.wait_for(lambda fs: any(f.event == "presence" for f in fs))
        visitor.say("more")
        assert [m["text"] for m in again.wait_messages(1)] == ["more"]


def test_a_reconnect_naming_a_closed_room_is_told_and_kept(server: ChatServer, unique) -> None:
    owner = server.visitor(unique("cz"))
    room = unique("gone")
    owner.create_room(room)
    last = owner.say("in the room", room=room)["id"]
    owner.request("DELETE", f"/api/rooms/{room}")
    owner.say("in general")
    with server.stream(f"room={room}", last_event_id=last) as stream:
        stream.wait_messages(1, kind="room_closed")
        owner.say("still listening")
        texts = [m["text"] for m in stream.wait_messages(2)]
    assert texts == ["in general", "still listening"]


def test_a_slow_listener_is_dropped_and_others_get_everything(start_server, mode, unique):
    server = start_server(mode, env={"CHATROOM_CLIENT_BUFFER": "50"})
    visitor = server.visitor(unique("sl"))
    text = "z" * 2000
    # The slow one never reads: its socket buffers fill, then its 50-event buffer.
    slow = server.stream(rcvbuf=4096)
    with server.stream() as fast:
        fast.ready()
        assert server.health()["listeners"] == 2
        count = 0
        deadline = time.monotonic() + 60
        while server.health()["listeners"] > 1 and time.monotonic() < deadline:
            for _ in range(100):
                visitor.say(text)
                count += 1
            fast.read_for(0.05)
        assert server.health()["listeners"] == 1
        assert len(fast.wait_messages(count, timeout=30)) == count
    # The dropped stream ends: after what was already in flight, the server closed it.
    slow.wait_closed(10)
    assert len(slow.messages()) < count
    slow.close()


def test_closed_connections_are_cleaned_up(start_server, mode) -> None:
    server = start_server(mode, env={"CHATROOM_KEEPALIVE": "0.2"})
    streams = [server.stream() for _ in range(20)]
    for stream in streams:
        stream.ready()
    assert server.health()["listeners"] == 20
    for stream in streams:
        stream.close()
    deadline = time.monotonic() + 5
    while server.health()["listeners"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.health()["listeners"] == 0


def test_a_client_that_writes_on_its_stream_is_still_served_and_noticed(
    server: ChatServer, unique
) -> None:
    # Bytes from the client wake the read watcher: it must read them, keep watching, and
    # still notice the hang-up that follows.
    ana = server.visitor(unique("ana"))
    with server.stream() as stream:
        stream.wait_for(lambda frames: frames)
        stream.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
        ana.say("still here")
        assert [m["text"] for m in stream.wait_messages(1)] == ["still here"]
        assert server.health()["listeners"] == 1
    deadline = time.monotonic() + 5
    while server.health()["listeners"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.health()["listeners"] == 0


def test_a_reader_that_takes_nothing_is_cut_in_time_and_counted(start_server, unique):
    # A buffer too big to fill: only the time rule (keep-alive + 10 s with nothing taken)
    # can cut it, and the cut is counted like any other. The rule is the listener's, the
    # same whatever the broker: one mode is enough.
    server = start_server("memory", env={"CHATROOM_CLIENT_BUFFER": "1000000",
                                     "CHATROOM_KEEPALIVE": "0.5"})
    visitor = server.visitor(unique("tr"))
    stuck = server.stream(rcvbuf=4096)
    with server.stream() as fine:
        fine.wait_for(lambda fs: any(f.event == "presence" for f in fs))
        for i in range(300):
            visitor.say(f"{i} " + "w" * 1900)
        began = time.monotonic()
        deadline = began + 40
        while server.health()["listeners"] > 1:
            assert time.monotonic() < deadline, "the stuck reader was never cut"
            fine.read_for(0.2)  # the other one keeps reading all along
        assert time.monotonic() - began < 30
        metrics = requests.get(server.url + "/metrics", timeout=5).text
        dropped = [line for line in metrics.splitlines()
                   if line.startswith("chatroom_slow_listeners_dropped_total")]
        assert dropped == ["chatroom_slow_listeners_dropped_total 1.0"], dropped
        assert len(fine.wait_messages(300, timeout=30)) == 300
    stuck.close()


def test_a_whole_class_reconnecting_at_once_gets_its_streams(start_server, mode) -> None:
    # Hundreds of streams starting together: past the Redis pool's size they wait their
    # turn for a connection; none is told "the chat is unavailable".
    import socket

    server = start_server(mode)
    request = f"GET /stream?room=general HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n"
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=20)
             for _ in range(400)]
    try:
        for sock in socks:
            sock.sendall(request.encode())
        for sock in socks:
            data = b""
            while b"event: presence" not in data:
                chunk = sock.recv(65536)
                assert chunk, data[:300]
                data += chunk
            assert b"unavailable" not in data
    finally:
        for sock in socks:
            sock.close()


def test_an_http_1_0_client_gets_the_stream_without_chunks(server: ChatServer, unique) -> None:
    # pywsgi frames an HTTP/1.0 response as it is, and the hand-over keeps to that.
    import socket

    ana = server.visitor(unique("ana"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while b"event: presence" not in data:
            data += sock.recv(65536)
        ana.say("plain bytes")
        while b"plain bytes" not in data:
            data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert body.startswith(b"event: presence\nretry: 2000\n")
    assert b"event: message\n" in body and b"\r\n" not in body
