"""The Redis broker's promises beyond the shared contract."""

from __future__ import annotations

import redis

from services import ChatServer, RedisServer


def _subscriptions(redis_server: RedisServer) -> int:
    clients = redis.Redis.from_url(redis_server.url).client_list(_type="pubsub")
    return len(clients)


def test_one_subscription_per_process_whatever_the_listeners(
    start_server, redis_server: RedisServer, unique
) -> None:
    server: ChatServer = start_server("redis")
    assert _subscriptions(redis_server) == 1
    streams = [server.stream() for _ in range(40)]
    try:
        for stream in streams:
            stream.ready()
        assert server.health()["listeners"] == 40
        assert _subscriptions(redis_server) == 1
        visitor = server.visitor(unique("sub"))
        visitor.say("to all forty")
        for stream in streams:
            assert stream.wait_messages(1)[0]["text"] == "to all forty"
    finally:
        for stream in streams:
            stream.close()


def test_a_malformed_payload_is_skipped(start_server, redis_server: RedisServer, unique):
    server: ChatServer = start_server("redis")
    visitor = server.visitor(unique("mf"))
    with server.stream() as stream:
        stream.ready()
        redis.Redis.from_url(redis_server.url).publish("chatroom:events", b"\xffnot a record")
        visitor.say("after the garbage")
        assert stream.wait_messages(1)[0]["text"] == "after the garbage"
