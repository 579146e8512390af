"""Storage in Redis: shared by every process and machine that uses the same Redis."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

import redis

from ..events import Draft, Event, room_channel
from . import Room, Storage, sort_rooms

_SEQ = "chatroom:seq"
_ROOMS = "chatroom:rooms"

# One atomic step: the next id (never at or below the floor the caller has seen, so ids
# do not go backwards when Redis comes back empty), the record in its channel's log, the
# log trimmed, and, when asked, the record published. Publishing inside the step is what
# makes every process receive events in id order, whoever posted them.
_APPEND = """
local id = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[3])
if id <= floor then
  id = floor + 1
  redis.call('SET', KEYS[1], id)
end
local record = id .. ARGV[1]
redis.call('ZADD', KEYS[2], id, record)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[2]) - 1)
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[4], record)
end
return id
"""

_RAISE = """
if (tonumber(redis.call('GET', KEYS[1])) or 0) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
"""

_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
"""


def _log_key(channel: str) -> str:
    return f"chatroom:log:{channel}"


def _name_key(key: str) -> str:
    return f"chatroom:name:{key}"


class RedisStorage(Storage):
    """History as one sorted set per channel, scored by id; rooms in a hash; names as keys."""

    def __init__(self, client: redis.Redis, history: int) -> None:
        self._redis = client
        self._history = history
        self._append = client.register_script(_APPEND)
        self._raise = client.register_script(_RAISE)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self.ensure_general()

    def append(self, draft: Draft, *, floor: int = 0, publish_to: str = "") -> Event:
        """Store ``draft``; with ``publish_to``, publish its record there in the same step."""
        event_id = self._append(
            keys=[_SEQ, _log_key(draft.channel)],
            args=[draft.tail(), self._history, floor, publish_to],
        )
        return Event.logged(int(event_id), draft.channel, draft.kind, draft.body)

    def history(self, channel: str, limit: int, before: int | None = None) -> list[Event]:
        top = f"({before}" if before is not None else "+inf"
        records = self._redis.zrevrangebyscore(_log_key(channel), top, "-inf", 0, limit)
        return [Event.from_record(r) for r in reversed(records)]

    def since(self, channels: Iterable[str], after: int) -> list[Event]:
        pipe = self._redis.pipeline(transaction=False)
        for channel in channels:
            pipe.zrangebyscore(_log_key(channel), f"({after}", "+inf")
        lists = [[Event.from_record(r) for r in records] for records in pipe.execute()]
        return list(heapq.merge(*lists, key=lambda e: e.id))

    def last_id(self) -> int:
        return int(self._redis.get(_SEQ) or 0)

    def raise_last_id(self, floor: int) -> None:
        self._raise(keys=[_SEQ], args=[floor])

    def create_room(self, room: Room) -> bool:
        return bool(self._redis.hsetnx(_ROOMS, room.name, room.created_by or ""))

    def get_room(self, name: str) -> Room | None:
        created_by = self._redis.hget(_ROOMS, name)
        return None if created_by is None else Room(name, created_by.decode() or None)

    def list_rooms(self) -> list[Room]:
        return sort_rooms(
            Room(name.decode(), by.decode() or None)
            for name, by in self._redis.hgetall(_ROOMS).items()
        )

    def delete_room(self, name: str) -> None:
        pipe = self._redis.pipeline()
        pipe.hdel(_ROOMS, name)
        pipe.delete(_log_key(room_channel(name)))
        pipe.execute()

    def claim_name(self, key: str, session: str, hold: float) -> bool:
        return bool(self._claim(keys=[_name_key(key)], args=[session, max(1, int(hold * 1000))]))

    def release_name(self, key: str, session: str) -> None:
        self._release(keys=[_name_key(key)], args=[session])

    def close(self) -> None:
        self._redis.close()
