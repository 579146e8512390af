"""What one visitor can send, and what it must not do to anyone else."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from services import ChatServer


def _raw(server: ChatServer, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` bytes as they are; return everything the server answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def _split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


# ------------------------------------------------------------------ ids --

HOSTILE_IDS = [
    "9223372036854775807", "100000000000000", "9007199254740993", "someone-99999999",
    "zzzzzzzz-9223372036854775", "0",
]


def test_no_last_event_id_moves_the_sequence(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("id"))
    for hostile in HOSTILE_IDS:
        before = visitor.say("before")
        with server.stream(f"last_event_id={hostile}") as stream:
            # Longer than any id can be: a 400. Otherwise a replay of what is retained.
            assert stream.status == (400 if len(hostile.rpartition("-")[2]) > 16 else 200)
            if stream.status == 200:
                stream.ready()
            after = visitor.say("after")
            assert after["id"] == before["id"] + 1, hostile
            if stream.status == 200:
                # A foreign epoch replays what is retained first, then live ones.
                stream.wait_for(lambda fs, after=after: after in stream.messages())
        assert visitor.history()[-2:] == [before, after]
    server.restart()
    again = visitor.say("after a restart")
    assert again["id"] == after["id"] + 1


@pytest.mark.parametrize("malformed", ["abc", "-5", "1e5", "1.5", "x" * 100, "9" * 40, "a-b-c"])
def test_a_malformed_last_event_id_is_a_json_400(server: ChatServer, malformed) -> None:
    answer = requests.get(
        server.url + "/stream", headers={"Last-Event-ID": malformed}, timeout=5
    )
    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["code"] == "invalid_last_event_id"


def test_an_id_of_this_epoch_never_reached_replays_nothing(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("nr"))
    visitor.say("old")
    first = visitor.say("seen")
    with server.stream(last_event_id=first["id"] - 1) as stream:
        stream.wait_messages(1)
        epoch = stream.frames[-1].epoch
    with server.stream(last_event_id=f"{epoch}-{first['id'] + 1000}") as stream:
        stream.wait_for(lambda fs: any(f.event == "presence" for f in fs))
        live = visitor.say("live")
        assert stream.wait_messages(1) == [live]


def test_huge_counters_are_written_as_numbers(start_server, redis_server, unique) -> None:
    # A Redis whose sequence reached 10^14 (set directly, as a long life would):
    # Lua prints such numbers as 1e+14 unless the id stays text.
    server = start_server("redis")
    redis_server.client().set("chatroom:seq", 10**14 + 5)
    visitor = server.visitor(unique("big"))
    with visitor.stream() as stream:
        stream.wait_for(lambda fs: any(f.event == "presence" for f in fs))
        sent = visitor.say("a hundred trillion")
        assert sent["id"] == 10**14 + 6
        assert stream.wait_messages(1) == [sent]
        assert stream.frames[-1].number == 10**14 + 6
    assert visitor.history()[-1] == sent
    assert visitor.history(before=sent["id"] + 1)[-1] == sent


# ------------------------------------------------------------------ errors --


def test_every_error_is_json(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("js"))
    answers = [
        requests.get(server.url + "/api/nothing", timeout=5),
        requests.get(server.url + "/nothing", headers={"Accept": "application/json"}, timeout=5),
        requests.put(server.url + "/api/rooms", timeout=5),
        visitor.request("POST", "/api/rooms/general/messages", json={"text": "x" * 100_000}),
        visitor.request("POST", "/api/rooms/general/messages",
                        data='{"text": "\\ud800"}', headers={"Content-Type": "application/json"}),
        visitor.request("POST", "/login", data='{"username": "a\\udfffb"}',
                        headers={"Content-Type": "application/json"}),
        visitor.request("POST", "/api/rooms/general/messages", data="[" * 20_000 + "]" * 20_000,
                        headers={"Content-Type": "application/json"}),
        visitor.request("POST", "/login", data="{\"a\":" * 20_000 + "1" + "}" * 20_000,
                        headers={"Content-Type": "application/json"}),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.request.url, answer.status_code)
        assert answer.headers["Content-Type"] == "application/json", answer.request.url
        assert answer.json()["code"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert visitor.say("still fine")["text"] == "still fine"


def test_requests_the_app_never_sees_get_json_too(start_server) -> None:
    # The connection's handling is the same whatever the broker.
    server = start_server("memory")
    host = f"Host: 127.0.0.1:{server.port}\r\n".encode()
    cases = {
        b"GARBAGE\r\n\r\n": 400,
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n" + host + b"\r\n": 414,
        b"GET / HTTP/1.1\r\n" + host + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n":
            431,
        b"GET / HTTP/1.1\r\n" + host + b"X-Big: " + b"y" * 20_000 + b"\r\n\r\n": 431,
        b"GET / HTTP/1.1\r\n" + host + b"".join(b"X-%d: %s\r\n" % (i, b"z" * 500)
                                               for i in range(60)) + b"\r\n": 431,
        # What HTTP/1.1 says a server must refuse: each could make two parsers disagree.
        b"GET / HTTP/1.1\r\n" + host + b"X-A: 1\r\n folded\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\n" + host + b"Content-Length : 0\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\n" + host + b"no colon here\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\n" + host + b"X-A: 1\r2\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\n" + host + b"X-A: 1\x002\r\n\r\n": 400,
    }
    for request, status in cases.items():
        got, headers, body = _split(_raw(server, request))
        assert got == status, request[:40]
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["code"]
    assert "Traceback" not in server.output()


def test_headers_are_read_in_any_case_split_and_a_byte_at_a_time(server: ChatServer,
                                                                  unique) -> None:
    visitor = server.visitor(unique("hd"))
    body = b'{"text": "header by header"}'
    request = (b"POST /api/rooms/general/messages HTTP/1.1\r\nhOsT: 127.0.0.1:%d\r\n"
               b"cookie: unrelated=1\r\nCOOKIE: %s\r\ncontent-TYPE: application/json\r\n"
               b"Content-Length:%d\r\nConnection: close\r\n\r\n%s"
               % (server.port, visitor.cookie().encode(), len(body), body))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for byte in request:
            sock.sendall(bytes([byte]))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, sent = _split(answer)
    assert status == 201, answer
    assert json.loads(sent)["user"] == visitor.name
    assert visitor.history()[-1]["text"] == "header by header"


def test_head_answers_have_no_body(start_server) -> None:
    # The connection's handling is the same whatever the broker.
    server = start_server("memory")
    for path in ["/", "/stream", "/stream?room=general", "/api/rooms", "/healthz", "/inspect"]:
        request = (f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                   "Connection: close\r\n\r\n")
        status, _, body = _split(_raw(server, request.encode()))
        assert status == 200, path
        assert body == b"", (path, body)


def test_pages_carry_a_content_security_policy(start_server) -> None:
    # The connection's handling is the same whatever the broker.
    server = start_server("memory")
    for path in ["/", "/inspect", "/stats"]:
        answer = requests.get(server.url + path, timeout=5)
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


# ------------------------------------------------------------------ hosts --


def test_only_this_servers_host_names_are_served(start_server) -> None:
    # The connection's handling is the same whatever the broker.
    server = start_server("memory")
    for host in ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost.evil"]:
        for path in ["/", "/api/rooms", "/stream", "/api/rooms/"]:
            answer = requests.get(server.url + path, headers={"Host": host}, timeout=5,
                                  allow_redirects=False)
            assert answer.status_code == 400, (host, path)
            assert answer.json()["code"] == "unknown_host"
            assert "evil" not in answer.headers.get("Location", "")
    hostname = socket.gethostname()
    for host in ["localhost", f"localhost:{server.port}", f"127.0.0.1:{server.port}",
                 f"[::1]:{server.port}", hostname, f"{hostname}.local"]:
        answer = requests.get(server.url + "/api/rooms", headers={"Host": host}, timeout=5)
        assert answer.status_code == 200, host


def test_allowed_hosts_add_names_and_star_turns_the_check_off(start_server, mode) -> None:
    named = start_server(mode, env={"CHATROOM_ALLOWED_HOSTS": "chat.school.example"})
    answer = requests.get(named.url + "/api/rooms", headers={"Host": "chat.school.example"},
                          timeout=5)
    assert answer.status_code == 200
    assert requests.get(named.url + "/api/rooms", headers={"Host": "other.example"},
                        timeout=5).status_code == 400
    anything = start_server(mode, env={"CHATROOM_ALLOWED_HOSTS": "*"})
    assert requests.get(anything.url + "/api/rooms", headers={"Host": "other.example"},
                        timeout=5).status_code == 200


# ------------------------------------------------------------------ limits --


def test_logins_are_limited_per_address(start_server, mode, unique) -> None:
    server = start_server(mode, env={"CHATROOM_RATE_LIMIT": None})
    codes = [server.visitor(source="127.0.0.2").login(unique("lg")).status_code
             for _ in range(21)]
    assert codes[:20] == [200] * 20
    assert codes[20] == 429
    # Another machine, and this computer, are not held back by it.
    assert server.visitor(source="127.0.0.3").login(unique("lg")).status_code == 200
    assert server.visitor().login(unique("lg")).status_code == 200


def test_posts_are_limited_per_session_and_per_address(start_server, mode, unique) -> None:
    server = start_server(mode, env={"CHATROOM_RATE_LIMIT": None})
    people = [server.visitor(unique("pa"), source="127.0.0.2") for _ in range(8)]
    accepted = sum(p.post(f"spam {i}").status_code == 201 for p in people for i in range(10))
    # 10 each per session, but 30 per 5 s from one address.
    assert accepted == 30
    refused = people[0].post("more")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert server.visitor(unique("ok"), source="127.0.0.3").post("hello").status_code == 201


def test_forwarded_for_counts_only_through_trusted_proxies(start_server, mode, unique) -> None:
    untrusted = start_server(mode, env={"CHATROOM_RATE_LIMIT": None})
    codes = []
    for i in range(21):
        visitor = untrusted.visitor(source="127.0.0.2")
        visitor.http.headers["X-Forwarded-For"] = f"10.0.0.{i}"
        codes.append(visitor.login(unique("xf")).status_code)
    assert codes[-1] == 429  # a made-up header buys no new allowance
    proxied = start_server(mode, env={"CHATROOM_RATE_LIMIT": None,
                                      "CHATROOM_TRUSTED_PROXIES": "127.0.0.2"})
    for i in range(25):
        visitor = proxied.visitor(source="127.0.0.2")
        visitor.http.headers["X-Forwarded-For"] = f"203.0.113.9, 10.0.0.{i}"
        assert visitor.login(unique("xp")).status_code == 200


def test_rooms_are_limited_in_number_and_rate(start_server, mode, unique) -> None:
    server = start_server(mode, env={"CHATROOM_RATE_LIMIT": None, "CHATROOM_MAX_ROOMS": "5"})
    maker = server.visitor(unique("rm"), source="127.0.0.2")
    codes = [maker.create_room(unique("r")).status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    other = server.visitor(unique("rm"))
    assert other.create_room(unique("r")).status_code == 201
    full = other.create_room(unique("r"))
    assert full.status_code == 403 and full.json()["code"] == "too_many_rooms"
    assert len(other.request("GET", "/api/rooms").json()["rooms"]) == 5


def test_connections_are_limited_per_address(start_server, mode) -> None:
    server = start_server(mode, env={"CHATROOM_MAX_CONNECTIONS": "4", "CHATROOM_RATE_LIMIT": None})
    streams = [server.stream(source="127.0.0.2") for _ in range(4)]
    for stream in streams:
        stream.wait_for(lambda fs: any(f.event == "presence" for f in fs))
    status, _, body = _split(_raw_from(server, "127.0.0.2"))
    assert status == 429 and json.loads(body)["code"] == "too_many_connections"
    # This computer and other machines are not affected.
    assert requests.get(server.url + "/api/rooms", timeout=5).status_code == 200
    assert _split(_raw_from(server, "127.0.0.3"))[0] == 200
    streams[0].close()
    deadline = time.monotonic() + 10
    while _split(_raw_from(server, "127.0.0.2"))[0] != 200:
        assert time.monotonic() < deadline, "a closed stream never gave its slot back"
        time.sleep(0.1)
    for stream in streams[1:]:
        stream.close()


def _raw_from(server: ChatServer, source: str) -> bytes:
    with socket.socket() as sock:
        sock.settimeout(5)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(f"GET /api/rooms HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                     "Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_a_connection_that_sends_no_headers_is_closed(start_server) -> None:
    # The connection's handling is the same whatever the broker.
    server = start_server("memory")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")  # and then nothing
        began = time.monotonic()
        assert sock.recv(100) == b""
        assert 9 <= time.monotonic() - began < 15


def test_the_start_up_text_says_how_many_listeners_fit(start_server) -> None:
    # The connection's handling is the same whatever the broker.
    server = start_server("memory")
    assert "listeners at once" in server.output()


def test_a_private_server_hides_the_room_list(start_server, mode, unique) -> None:
    server = start_server(mode, args=["--private"])
    answer = requests.get(server.url + "/api/rooms", timeout=5)
    assert answer.status_code == 401
    assert server.visitor(unique("pv")).request("GET", "/api/rooms").status_code == 200
