"""The stream's socket writer and listener, in process, on a real socket pair.

No server here: a :class:`SocketWriter` writes to one end of a ``socketpair`` and the test
reads the other, as a browser would, in gevent's loop.
"""

from __future__ import annotations

import contextlib
import socket

import gevent
import gevent.socket
import pytest

from chatroom.events import Draft, Event
from chatroom.fanout import Fanout
from chatroom.handover import LAST_CHUNK, Batch, SocketWriter, StreamHandedOver
from chatroom.listener import Listener
from chatroom.sse import KEEPALIVE
from chatroom.storage.sqlite import SqliteStorage


def wait_until(condition, timeout: float = 5.0) -> None:
    with gevent.Timeout(timeout, AssertionError("timed out")):
        while not condition():
            gevent.sleep(0.01)


def read_all(sock, size: int) -> bytes:
    data = b""
    with gevent.Timeout(10):
        while len(data) < size:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


@pytest.fixture
def pair():
    server_end, client_end = gevent.socket.socketpair()
    losses: list[tuple[OSError | None, bool]] = []
    made: list[SocketWriter] = []

    def writer(chunked: bool = True, small: bool = False) -> SocketWriter:
        if small:  # a client that takes little at a time
            server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            client_end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        made.append(SocketWriter(server_end, chunked, gevent.get_hub().loop,
                                 lambda exc, unsent: losses.append((exc, unsent))))
        return made[-1]

    yield writer, client_end, losses
    for w in made:
        w.close()
    client_end.close()


def test_a_write_is_one_http_chunk(pair) -> None:
    writer, client, _ = pair
    writer().send(Batch.of(b"data: hi\n\n"))
    assert read_all(client, 15) == b"a\r\ndata: hi\n\n\r\n"


def test_without_chunks_the_bytes_go_as_they_are(pair) -> None:
    writer, client, _ = pair
    writer(chunked=False).send(Batch.of(b"data: hi\n\n"))
    assert read_all(client, 10) == b"data: hi\n\n"


def test_what_the_socket_does_not_take_is_sent_later_in_order(pair) -> None:
    writer, client, losses = pair
    w = writer(chunked=False, small=True)
    first, second = b"a" * 500_000, b"b" * 1000
    w.send(Batch.of(first))
    assert w.waiting > 0  # the socket took part of it; the rest waits
    w.send(Batch.of(second))
    assert read_all(client, len(first) + len(second)) == first + second
    wait_until(lambda: w.waiting == 0)
    assert losses == []


def test_a_clean_end_sends_the_last_chunk(pair) -> None:
    writer, client, _ = pair
    w = writer()
    w.send(Batch.of(b"x"))
    w.close(goodbye=True)
    assert read_all(client, 100) == b"1\r\nx\r\n" + LAST_CHUNK


def test_no_last_chunk_while_bytes_still_wait(pair) -> None:
    # It would land in the middle of an unfinished chunk; the connection just closes.
    writer, client, _ = pair
    w = writer(small=True)
    w.send(Batch.of(b"a" * 500_000))
    assert w.waiting
    w.close(goodbye=True)
    body = read_all(client, 10_000_000)
    assert not body.endswith(LAST_CHUNK)


def test_a_client_that_hangs_up_is_noticed_at_once(pair) -> None:
    writer, client, losses = pair
    writer()
    client.close()
    wait_until(lambda: losses)
    assert losses == [(None, False)]


def test_bytes_from_the_client_are_read_and_the_watch_goes_on(pair) -> None:
    writer, client, losses = pair
    writer()
    client.sendall(b"GET / HTTP/1.1\r\n\r\n" * 100)
    gevent.sleep(0.1)
    assert losses == []
    client.close()
    wait_until(lambda: losses)


def test_a_client_gone_while_bytes_wait_counts_as_stalled() -> None:
    # The fan-out counts such a cut with the slow listeners (chatroom_slow_listeners_dropped).
    server_end, browser = gevent.socket.socketpair()
    server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    browser.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ended: list[bool] = []
    listener = Listener({"room:general"}, None, limit=10)
    listener.hand_over(server_end, False, lambda: ended.append(True), gevent.get_hub().loop)
    listener.writer.send(Batch.of(b"a" * 2_000_000))
    browser.close()
    wait_until(lambda: ended)
    assert listener.stalled and listener.closed


def test_the_request_ends_with_a_connection_reset() -> None:
    # pywsgi and gunicorn take ECONNRESET for a client that hung up: quietly.
    assert isinstance(StreamHandedOver(), ConnectionResetError)


def event(number: int) -> Event:
    return Event.logged(number, "room:general", "message", '"text":"x"', "e")


def test_a_listener_is_bounded_before_and_after_the_hand_over() -> None:
    waiting = Listener({"room:general"}, None, limit=3)
    assert all(waiting.push(event(i)) for i in range(1, 4))
    assert not waiting.push(event(4))  # full: the fan-out cuts it
    listener = Listener({"room:general"}, None, limit=3)
    server_end, browser = gevent.socket.socketpair()
    server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    browser.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ended: list[bool] = []
    listener.hand_over(server_end, False, lambda: ended.append(True), gevent.get_hub().loop)
    listener.writer.send(Batch.of(b"a" * 2_000_000))  # a client that stopped reading
    assert listener.writer.waiting == 1
    assert listener.deliver(Batch([event(1), event(2)]))  # three frames behind
    assert not listener.deliver(Batch([event(3)]))  # four: the fan-out cuts it
    assert listener.write(KEEPALIVE) is False
    listener.end()
    listener.end()
    assert ended == [True]  # the cleanup runs once
    browser.close()


def test_a_listener_gets_a_turn_of_events_in_one_write_even_more_than_its_buffer() -> None:
    # A burst larger than the buffer is no reason to cut a client that takes it all.
    listener = Listener({"room:general"}, None, limit=3)
    server_end, browser = gevent.socket.socketpair()
    listener.hand_over(server_end, False, lambda: None, gevent.get_hub().loop)
    assert listener.deliver(Batch([event(i) for i in range(1, 6)]))
    frames = b"".join(event(i).frame for i in range(1, 6))
    assert browser.recv(65536) == frames
    listener.end()
    browser.close()


def test_a_client_that_stopped_reading_is_cut_after_a_burst_larger_than_its_buffer() -> None:
    # The worst a stalled client can make the server hold: one burst, then it is cut.
    listener = Listener({"room:general"}, None, limit=3)
    server_end, browser = gevent.socket.socketpair()
    server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    browser.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.hand_over(server_end, False, lambda: None, gevent.get_hub().loop)
    big = [Event.logged(i, "room:general", "message", '"text":"%s"' % ("x" * 200_000), "e")
           for i in range(1, 6)]
    assert listener.deliver(Batch(big))  # sent in part: five frames wait
    assert listener.writer.waiting == 5
    assert not listener.deliver(Batch([event(6)]))  # the fan-out cuts it
    listener.end()
    browser.close()


def test_a_listener_skips_what_its_replay_sent() -> None:
    listener = Listener({"room:general"}, None, limit=10)
    listener.push(event(4))  # arrived live while the replay read storage
    listener.push(event(6))
    listener.replayed_up_to(5)
    listener.push(event(5))  # arrived late through Redis, replayed already
    listener.push(event(7))
    assert [i for i, _ in listener.take(0)] == [6, 7]


def taken(listener: Listener, count: int) -> list[int | None]:
    """The ids of the next ``count`` frames queued for ``listener`` (5 s at most)."""
    ids: list[int | None] = []
    with gevent.Timeout(5):
        while len(ids) < count:
            ids += [i for i, _ in listener.take(1)]
    return ids


def test_the_fan_out_delivers_in_id_order_once_filling_gaps_from_storage(tmp_path) -> None:
    storage = SqliteStorage(tmp_path / "chat.sqlite3", history=100)
    fanout = Fanout(storage)
    listener = Listener({"room:general"}, None, limit=100)
    fanout.add(listener)
    stored = [storage.append(Draft.of("room:general", "message", text=f"m{i}"))[0]
              for i in range(4)]
    fanout.receive(stored[0])
    fanout.receive(stored[3])  # 2 and 3 were lost on the way: storage fills them in first
    fanout.receive(stored[1])  # late, and delivered already
    fanout.receive(stored[3])  # twice
    assert taken(listener, len(stored)) == [e.id for e in stored]
    later, _ = storage.append(Draft.of("room:general", "message", text="after an outage"))
    fanout.resync()
    assert taken(listener, 1) == [later.id]
    assert listener.take(0.1) == []  # and nothing more
    fanout.close_all()
    storage.close()


def _handed_over(fanout: Fanout, channels: set[str], limit: int = 100):
    listener = Listener(channels, None, limit=limit)
    fanout.add(listener)
    server_end, browser = gevent.socket.socketpair()
    ended: list[bool] = []
    fanout.take_over(listener, server_end, False, lambda: ended.append(True))
    return listener, browser, ended


def test_a_turn_of_events_reaches_each_listener_once_in_order_within_its_buffer(tmp_path) -> None:
    storage = SqliteStorage(tmp_path / "chat.sqlite3", history=100)
    fanout = Fanout(storage)
    _, one_browser, _ = _handed_over(fanout, {"room:general"})
    _, both_browser, _ = _handed_over(fanout, {"room:general", "room:side"})
    small, small_browser, small_ended = _handed_over(fanout, {"room:general"}, limit=2)
    small.writer.send(Batch.of(b"a" * 2_000_000))  # its browser stopped reading
    replayed, replayed_browser, _ = _handed_over(fanout, {"room:general"})

    def append(channel: str, text: str) -> Event:
        return storage.append(Draft.of(channel, "message", text=text))[0]

    general = [append("room:general", f"g{i}") for i in range(3)]
    side = append("room:side", "s")
    last = append("room:general", "g3")
    replayed.replayed_up_to(general[1].id)  # its replay sent the first two already
    for turn in (general, [side, last]):  # one channel, then two, in a turn of the loop
        for event in turn:
            fanout.receive(event)
        gevent.sleep(0)  # the next turn of the loop
    frames = [e.frame for e in (*general, last)]
    assert read_all(one_browser, len(b"".join(frames))) == b"".join(frames)
    in_order = [e.frame for e in (*general, side, last)]
    assert read_all(both_browser, len(b"".join(in_order))) == b"".join(in_order)
    assert read_all(replayed_browser, len(general[2].frame + last.frame)) == (
        general[2].frame + last.frame)
    wait_until(lambda: small_ended == [True])  # behind by more than a buffer of two: cut
    assert small.closed and fanout.dropped == 1
    fanout.close_all()
    storage.close()
    for browser in (one_browser, both_browser, small_browser, replayed_browser):
        browser.close()


def test_a_listener_added_within_a_turn_gets_only_what_follows(tmp_path) -> None:
    storage = SqliteStorage(tmp_path / "chat.sqlite3", history=100)
    fanout = Fanout(storage)
    _, early_browser, _ = _handed_over(fanout, {"room:general"})
    before, after = (storage.append(Draft.of("room:general", "message", text=t))[0]
                     for t in ("before", "after"))
    fanout.receive(before)
    late = Listener({"room:general"}, None, limit=100)
    fanout.add(late)  # in the same turn, before the flush
    fanout.receive(after)
    assert taken(late, 1) == [after.id]
    both = before.frame + after.frame
    assert read_all(early_browser, len(both)) == both
    fanout.close_all()
    storage.close()
    early_browser.close()


def test_events_go_out_at_once_at_a_light_load_and_share_writes_under_load(tmp_path) -> None:
    storage = SqliteStorage(tmp_path / "chat.sqlite3", history=100)
    fanout = Fanout(storage)
    # Unread, a socket pair takes a few hundred frames: the rest wait in the writers.
    browsers = [_handed_over(fanout, {"room:general"}, limit=5000)[1] for _ in range(200)]
    watched = browsers[0]
    watched.settimeout(0.0)
    got = bytearray()

    def arrived() -> int:
        with contextlib.suppress(BlockingIOError):
            while chunk := watched.recv(1 << 20):
                got.extend(chunk)
        return len(got)

    # Two events one right after the other, at a light load: each is written before
    # receive returns (before its poster is even answered); neither waits for the other.
    sent = [event(1), event(2)]
    for e in sent:
        fanout.receive(e)
        assert arrived() == sum(len(x.frame) for x in sent[: e.id])
    # Back to back for long enough, the fan-out is busy: an event then waits for more
    # to share one write per listener.
    expected = sum(len(x.frame) for x in sent)
    while len(sent) < 3000:
        sent.append(event(len(sent) + 1))
        fanout.receive(sent[-1])
        expected += len(sent[-1].frame)
        if arrived() < expected:
            break
    assert arrived() < expected, "no event ever waited"
    # And it goes out after a short while, in order, to everyone.
    whole = b"".join(x.frame for x in sent)
    watched.settimeout(None)
    assert bytes(got) + read_all(watched, expected - len(got)) == whole
    for browser in browsers[1:]:
        assert read_all(browser, expected) == whole
    fanout.close_all()
    storage.close()
    for browser in browsers:
        browser.close()
