"""What Redis keeps live for every process: who is online, and rate-limit windows."""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

from ..config import RateLimit
from . import redis_scripts as scripts

_PRESENCE_ROOMS = "chatroom:presence-rooms"
_PRESENCE_PREFIX = "chatroom:presence:"
# A rate window's counter, whether counted alone or in an append's step.
RATE_PREFIX = "chatroom:rate:"


def _now_ms() -> int:
    return int(time.time() * 1000)


class RedisLiveState:
    """The presence and rate-limit part of :class:`~chatroom.storage.Storage`, in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._rate = client.register_script(scripts.RATE)
        self._presence_add = client.register_script(scripts.PRESENCE_ADD)
        self._presence_remove = client.register_script(scripts.PRESENCE_REMOVE)
        self._presence_expire = client.register_script(scripts.PRESENCE_EXPIRE)

    def rate_hit(self, key: str, limit: RateLimit) -> float:
        window_ms = max(1, int(limit.seconds * 1000))
        wait_ms = self._rate(keys=[RATE_PREFIX + key], args=[limit.count, window_ms])
        return max(0.0, int(wait_ms) / 1000)

    def presence_add(self, room: str, user: str, process: str, ttl: float) -> bool:
        now = _now_ms()
        return bool(self._presence_add(
            keys=[_PRESENCE_PREFIX + room, _PRESENCE_ROOMS],
            args=[user, process, now, now + int(ttl * 1000), room],
        ))

    def presence_remove(self, room: str, user: str, process: str) -> bool:
        return bool(self._presence_remove(
            keys=[_PRESENCE_PREFIX + room], args=[user, process, _now_ms()]
        ))

    def presence_refresh(
        self, entries: Iterable[tuple[str, str]], process: str, ttl: float
    ) -> None:
        until = _now_ms() + int(ttl * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for room, user in entries:
            # ZADD, not an update: after Redis restarts empty this puts everyone back.
            pipe.zadd(_PRESENCE_PREFIX + room, {f"{user}\t{process}": until})
            pipe.sadd(_PRESENCE_ROOMS, room)
        pipe.execute()

    def presence_expire(self) -> list[tuple[str, str]]:
        flat = self._presence_expire(keys=[_PRESENCE_ROOMS, _PRESENCE_PREFIX], args=[_now_ms()])
        return [(flat[i].decode(), flat[i + 1].decode()) for i in range(0, len(flat), 2)]

    def online(self, room: str) -> list[str]:
        return self.online_counts_and_names([room])[room]

    def online_counts(self, rooms: Iterable[str]) -> dict[str, int]:
        return {room: len(names) for room, names in self.online_counts_and_names(rooms).items()}

    def online_counts_and_names(self, rooms: Iterable[str]) -> dict[str, list[str]]:
        """Return who is online in each of ``rooms``, in one round trip."""
        rooms = list(rooms)
        pipe = self._redis.pipeline(transaction=False)
        now = _now_ms()
        for room in rooms:
            pipe.zrangebyscore(_PRESENCE_PREFIX + room, now, "+inf")
        result = {}
        for room, members in zip(rooms, pipe.execute(), strict=True):
            result[room] = sorted({m.decode().rsplit("\t", 1)[0] for m in members})
        return result
