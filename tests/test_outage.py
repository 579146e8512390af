"""Redis goes away while the chat runs, then comes back: the server survives and recovers."""

from __future__ import annotations

import time

import requests

from services import ChatServer, RedisServer


def _wait_health(server: ChatServer, status: int, timeout: float = 15) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if requests.get(server.url + "/healthz", timeout=5).status_code == status:
            return time.monotonic() - began
        time.sleep(0.1)
    raise AssertionError(f"/healthz never answered {status}")


def _clients(redis: RedisServer) -> tuple[int, int]:
    client = redis.client()
    everyone = len(client.client_list()) - 1  # less this one
    return everyone, len(client.client_list(_type="pubsub"))


def test_a_redis_outage_is_survived_and_recovered(start_server, own_redis, unique) -> None:
    server = start_server("redis", redis=own_redis, env={"CHATROOM_KEEPALIVE": "0.5"})
    ana = server.visitor(unique("ana"))
    with server.stream() as listener:
        listener.ready()
        before = ana.say("before the outage")
        listener.wait_messages(1)
        clients_before = _clients(own_redis)

        own_redis.save()
        own_redis.kill()
        _wait_health(server, 503, timeout=10)
        health = requests.get(server.url + "/healthz", timeout=5).json()
        assert health["status"] == "degraded" and health["broker"] == "redis"

        refused = ana.post("during the outage")
        assert refused.status_code == 503
        assert refused.json()["code"] == "broker_unavailable"
        assert "Traceback" not in refused.text
        assert ana.request("GET", "/api/rooms/general/messages").status_code == 503
        # A new listener is told to come back soon rather than refused for good.
        with server.stream() as newcomer:
            newcomer.wait_closed(2)
            assert newcomer.status == 200, (newcomer.headers, newcomer.body)
        # The existing listener stays connected, kept alive.
        keepalives = listener.body.count(b": keep-alive\n")
        listener.wait_for(lambda fs: listener.body.count(b": keep-alive\n") > keepalives,
                          timeout=5)
        assert not listener.closed

        own_redis.start()
        assert _wait_health(server, 200, timeout=15) < 15
        after = ana.say("after the outage")
        assert after["id"] > before["id"]
        assert listener.wait_messages(2)[-1] == after
        last_id = listener.last_id()

    with server.stream(last_event_id=before["id"]) as resumed:
        assert resumed.wait_messages(1) == [after]
    assert last_id.endswith(f"-{after['id']}")
    assert "Traceback" not in server.output()
    metrics = requests.get(server.url + "/metrics", timeout=5).text
    assert "chatroom_broker_reconnects_total 1.0" in metrics
    everyone, subscriptions = _clients(own_redis)
    assert subscriptions == 1
    assert everyone <= clients_before[0] + 1


def test_ids_never_go_backwards_when_redis_comes_back_empty(start_server, own_redis, unique):
    server = start_server("redis", redis=own_redis)
    ana = server.visitor(unique("ana"))
    last = [ana.say(f"m{i}") for i in range(5)][-1]
    own_redis.kill()
    _wait_health(server, 503)
    (own_redis.workdir / "dump.rdb").unlink(missing_ok=True)
    own_redis.start()  # empty
    _wait_health(server, 200)
    with server.stream(last_event_id=last["id"]) as listener:
        listener.ready()
        # The name hold was lost with the data: logging in again is allowed.
        assert ana.login(ana.name).status_code == 200
        after = ana.say("after")
        assert after["id"] > last["id"]
        assert listener.wait_messages(1) == [after]
    rooms = ana.request("GET", "/api/rooms").json()["rooms"]
    assert rooms[0]["name"] == "general"


def test_repeated_outages_leak_nothing(start_server, own_redis, unique) -> None:
    server = start_server("redis", redis=own_redis)
    server.visitor(unique("ana")).say("warm up")
    baseline = _clients(own_redis)
    for _ in range(3):
        own_redis.save()
        own_redis.kill()
        _wait_health(server, 503)
        own_redis.start()
        _wait_health(server, 200)
    server.visitor(unique("bo")).say("still fine")
    everyone, subscriptions = _clients(own_redis)
    assert subscriptions == 1
    assert everyone <= baseline[0] + 1


def test_a_redis_back_empty_has_general_and_keeps_connected_names(
    start_server, own_redis, unique
) -> None:
    server = start_server("redis", redis=own_redis)
    ana = server.visitor(unique("ana"))
    with ana.stream() as listener:
        listener.wait_for(lambda fs: any(f.event == "presence" for f in fs))
        own_redis.kill()
        (own_redis.workdir / "dump.rdb").unlink(missing_ok=True)
        own_redis.start()  # empty; the server may not have noticed yet
        rival = server.visitor()
        statuses: set[int] = set()
        settled = None
        while settled is None or time.monotonic() < settled + 1.0:
            # general is there from the first request on: never a 404 that would make a
            # browser's EventSource give up.
            history = rival.request("GET", "/api/rooms/general/messages")
            assert history.status_code in (200, 503), history.text
            with server.stream("room=general") as stream:
                assert stream.status == 200
            statuses.add(rival.login(ana.name).status_code)
            if settled is None and server.health()["status"] == "ok":
                settled = time.monotonic()
        # Nobody else got the name of someone still connected.
        assert 200 not in statuses, statuses
        assert 409 in statuses
        after = ana.say("still ana")
        assert listener.wait_messages(1) == [after]
