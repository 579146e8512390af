"""The rate limit and the same-origin rule."""

from __future__ import annotations

import time

from services import ChatServer


def test_the_rate_limit_answers_429_and_loses_nothing_else(start_server, mode, unique) -> None:
    server = start_server(mode, env={"CHATROOM_RATE_LIMIT": "5/2"})
    ana, bo = server.visitor(unique("ana")), server.visitor(unique("bo"))
    sent = [ana.say(f"m{i}") for i in range(3)]
    dm = ana.request("POST", f"/api/users/{bo.name}/messages", json={"text": "dm"})
    assert dm.status_code == 201  # private messages count too
    sent.append(ana.say("m3"))
    refused = ana.post("one too many")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    assert ana.request("POST", f"/api/users/{bo.name}/messages",
                       json={"text": "x"}).status_code == 429
    assert bo.post("others are not limited").status_code == 201
    refused_at = time.monotonic()
    while (answer := ana.post("after the wait")).status_code == 429:
        assert time.monotonic() - refused_at < int(refused.headers["Retry-After"]) + 1
        time.sleep(0.1)
    sent.append(answer.json())
    assert [m for m in ana.history() if m["user"] == ana.name] == sent


def test_the_default_limit_is_10_per_5_seconds(start_server, unique) -> None:
    server = start_server("memory", env={"CHATROOM_RATE_LIMIT": None})
    ana = server.visitor(unique("ana"))
    codes = [ana.post(f"m{i}").status_code for i in range(11)]
    assert codes == [201] * 10 + [429]


def test_foreign_origins_are_refused(server: ChatServer, unique) -> None:
    ana = server.visitor(unique("ana"))
    for headers in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/x"},
                    {"Origin": "null"}):
        answer = ana.request("POST", "/api/rooms/general/messages", json={"text": "x"},
                             headers=headers)
        assert answer.status_code == 403, headers
        assert answer.json()["code"] == "cross_origin"
        login = server.visitor().request("POST", "/login", json={"username": "mallory"},
                                         headers=headers)
        assert login.status_code == 403
    assert ana.history() == []


def test_same_origin_and_non_browser_clients_work(server: ChatServer, unique) -> None:
    ana = server.visitor(unique("ana"))
    own = server.url
    assert ana.request("POST", "/api/rooms/general/messages", json={"text": "a"},
                       headers={"Origin": own}).status_code == 201
    assert ana.request("POST", "/api/rooms/general/messages", json={"text": "b"},
                       headers={"Referer": own + "/"}).status_code == 201
    assert ana.post("c").status_code == 201  # no Origin, no Referer: curl, Locust
