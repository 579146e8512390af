"""Storage in Redis: shared by every process and machine that uses the same Redis."""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis

from ..events import Draft, Event, new_epoch, room_channel
from . import GENERAL, KEY_TTL, NameTaken, RateExceeded, Room, Session, Stale, Storage, Unavailable
from . import redis_scripts as scripts
from .recalled import Recalled
from .redis_live import RATE_PREFIX, RedisLiveState

_SEQ = "chatroom:seq"
# The store's life: set when the chat first uses this Redis, and again by the first
# process that finds the Redis empty, once it has put back what it knows (see
# RedisBroker). Until then, posts and logins wait: a 503, never an id or a name given
# out by a Redis that lost its memory.
_EPOCH = "chatroom:epoch"
_ROOMS = "chatroom:rooms"
_SETTINGS = "chatroom:settings"

def _log_key(channel: str) -> str:
    return f"chatroom:log:{channel}"


_NAME_PREFIX = "chatroom:name:"
_POSTED_PREFIX = "chatroom:posted:"
# How long a post waits for the replicas it needs before it is answered 503.
_WAIT_MS = 1000
_HOLDER_PREFIX = "chatroom:holder:"
_SESSION_PREFIX = "chatroom:session:"


def _name_key(key: str) -> str:
    return _NAME_PREFIX + key


T = TypeVar("T")


def _room(name: str, value: bytes) -> Room:
    created_by, _, creator = value.decode().partition("\t")
    return Room(name, created_by or None, creator or None)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _restoring(exc: redis.ResponseError | None) -> Exception:
    if exc is not None and not str(exc).startswith("NOEPOCH"):
        return Unavailable(f"Redis refused the request ({exc}).")
    return Unavailable("Redis came back empty and the chat is restoring what it knows.")


def _translating(method: Callable[..., T]) -> Callable[..., T]:
    # Callers (views, the stream) know nothing of redis-py: an outage reaches them as
    # Unavailable, which they answer with a 503 instead of a traceback.
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise Unavailable(f"Redis cannot be reached ({exc}).") from None

    return wrapper


class RedisStorage(RedisLiveState, Storage):
    """History as one sorted set per channel, scored by id; rooms in a hash; names as keys."""

    remembers = True

    def __init__(self, client: redis.Redis, history: int, replicas: int = 0) -> None:
        self._redis = client
        self._history = history
        self._replicas = replicas
        RedisLiveState.__init__(self, client)
        self._append = client.register_script(scripts.APPEND)
        self._restore = client.register_script(scripts.RESTORE)
        self._claim = client.register_script(scripts.CLAIM)
        self._release = client.register_script(scripts.RELEASE)
        self._renew = client.register_script(scripts.RENEW)
        self._start_session = client.register_script(scripts.START_SESSION)
        self._end_session = client.register_script(scripts.END_SESSION)
        self._make_host = client.register_script(scripts.MAKE_HOST)
        self._recalled = Recalled()
        self.ensure_general()
        self._redis.set(_EPOCH, new_epoch(), nx=True)

    def append(
        self, draft: Draft, *, floor: int = 0, publish_to: str = ""
    ) -> tuple[Event, bool]:
        """Store ``draft``; with ``publish_to``, publish its record there in the same step.

        With replicas required, the answer waits (Redis WAIT, on the connection that
        wrote) until that many replicas hold the event, and is Unavailable if they do not.
        """
        keys = [_SEQ, _EPOCH, _POSTED_PREFIX + draft.key]
        args: list[Any] = [draft.tail(), self._history, floor, publish_to,
                           _ms(KEY_TTL) if draft.key else ""]
        expected = draft.expects
        if expected is not None:
            keys += [_SESSION_PREFIX + expected.session, _SETTINGS, _ROOMS]
            args += ["1", expected.name, "1" if expected.host else "0", expected.room,
                     len(expected.settings)]
            for field, value in expected.settings:
                args += [field, "0", ""] if value is None else [field, "1", value]
        else:
            args.append("")
        if draft.holds is not None:
            name, session, hold = draft.holds
            keys.append(_name_key(name))
            args += [session, _ms(hold)]
        else:
            args += ["", ""]
        args.append(len(draft.counts))
        for key, count, seconds in draft.counts:
            keys.append(RATE_PREFIX + key)
            args += [count, _ms(seconds)]
        keys += [_log_key(draft.channel), *(_log_key(c) for c in draft.also)]
        try:
            if self._replicas:
                pipe = self._redis.pipeline(transaction=False)
                self._append(keys=keys, args=args, client=pipe)
                pipe.execute_command("WAIT", self._replicas, _WAIT_MS)
                result, acknowledged = pipe.execute()
                if acknowledged < self._replicas:
                    raise Unavailable(
                        f"only {acknowledged} of the {self._replicas} Redis replicas required"
                        " confirmed the message in time."
                    )
            else:
                result = self._append(keys=keys, args=args)
        except redis.ResponseError as exc:
            raise _restoring(exc) from None
        if len(result) == 1:
            return Event.from_record(result[0]), False
        if result[0] == b"":
            if result[1] == b"STALE":
                self._recalled.forget(expected)
                raise Stale
            if result[1] == b"NAMETAKEN":
                raise NameTaken
            raise RateExceeded(int(result[2]), max(1, int(result[3])) / 1000)
        id_text, epoch = result
        event = Event.logged(int(id_text), draft.channel, draft.kind, draft.body, epoch.decode())
        return event, True

    def posted(self, key: str) -> Event | None:
        record = self._redis.get(_POSTED_PREFIX + key)
        return None if record is None else Event.from_record(record)

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

    def position(self) -> tuple[str, int]:
        epoch, seq = self._redis.mget(_EPOCH, _SEQ)
        if epoch is None:
            raise _restoring(None)
        return epoch.decode(), int(seq or 0)

    def restore(
        self, floor: int, sessions: Iterable[tuple[str, Session]], hold: float, ttl: float
    ) -> str:
        """Put back into a Redis that came back empty what this process knows.

        Ids go on above ``floor``, ``general`` exists, the sessions of open streams and
        their names are there again; only then does a new epoch let posts and logins in.
        Return the epoch.
        """
        self.ensure_general()
        for key, session in sessions:
            held = self._claim(keys=[_name_key(key), _EPOCH], args=[session.id, _ms(hold), "0"])
            if held and self.get_session(session.id) is None:
                self.start_session(session, key, ttl)
        return self._restore(keys=[_SEQ, _EPOCH], args=[floor, new_epoch()]).decode()

    def create_room(self, room: Room) -> bool:
        value = f"{room.created_by or ''}\t{room.creator or ''}"
        return bool(self._redis.hsetnx(_ROOMS, room.name, value))

    def _get_room(self, name: str) -> Room | None:
        value = self._redis.hget(_ROOMS, name)
        return None if value is None else _room(name, value)

    def _list_rooms(self) -> list[Room]:
        return [
            _room(name.decode(), value) for name, value in self._redis.hgetall(_ROOMS).items()
        ]

    def delete_room(self, name: str) -> None:
        pipe = self._redis.pipeline()
        pipe.hdel(_ROOMS, name)
        pipe.delete(_log_key(room_channel(name)))
        pipe.execute()

    def claim_name(self, key: str, session: str, hold: float) -> bool:
        try:
            return bool(self._claim(keys=[_name_key(key), _EPOCH], args=[session, _ms(hold), "1"]))
        except redis.ResponseError as exc:
            raise _restoring(exc) from None

    def release_name(self, key: str, session: str) -> None:
        self._release(keys=[_name_key(key)], args=[session])

    def renew_name(self, key: str, session: str, hold: float) -> None:
        self._renew(keys=[_name_key(key)], args=[session, _ms(hold)])

    def start_session(self, session: Session, key: str, ttl: float) -> None:
        self._start_session(
            keys=[_SESSION_PREFIX + session.id, _HOLDER_PREFIX + key],
            args=[session.name, key, int(session.host), session.id, _ms(ttl), session.started,
                  session.address],
        )

    def get_session(self, session_id: str) -> Session | None:
        return self._read(session_id, [], GENERAL)[0]

    def recall(
        self, session_id: str, keys: list[str], room: str = GENERAL, fresh: bool = False
    ) -> tuple[Session | None, list[str | None], Room | None]:
        if not fresh:
            known = self._recalled.get(session_id, keys, room)
            if known is not None:
                return known
        found, settings, place = self._read(session_id, keys, room)
        self._recalled.keep(found, dict(zip(keys, settings, strict=True)), place)
        return found, settings, place

    def _read(
        self, session_id: str, keys: list[str], room: str
    ) -> tuple[Session | None, list[str | None], Room | None]:
        # A session, settings and a room in one round trip.
        pipe = self._redis.pipeline(transaction=False)
        pipe.hmget(_SESSION_PREFIX + session_id, "name", "host", "started", "address")
        if keys:
            pipe.hmget(_SETTINGS, keys)
        if room != GENERAL:
            pipe.hget(_ROOMS, room)
        answers = pipe.execute()
        name, host, started, address = answers[0]
        found = None if name is None else Session(
            session_id, name.decode(), host == b"1", int(started or 0), (address or b"").decode()
        )
        settings = [None if v is None else v.decode() for v in answers[1]] if keys else []
        place = Room(GENERAL, None)
        if room != GENERAL:
            place = None if answers[-1] is None else _room(room, answers[-1])
        return found, settings, place

    def make_host(self, session_id: str) -> bool:
        return bool(self._make_host(keys=[_SESSION_PREFIX + session_id]))

    def delete_event(self, channel: str, event_id: int) -> Event | None:
        key = _log_key(channel)
        records = self._redis.zrangebyscore(key, event_id, event_id)
        if not records:
            return None
        self._redis.zremrangebyscore(key, event_id, event_id)
        return Event.from_record(records[0])

    def clear_channel(self, channel: str) -> None:
        self._redis.delete(_log_key(channel))

    def get_settings(self, keys: list[str]) -> list[str | None]:
        return [None if v is None else v.decode() for v in self._redis.hmget(_SETTINGS, keys)]

    def set_setting(self, key: str, value: str | None) -> None:
        if value is None:
            self._redis.hdel(_SETTINGS, key)
        else:
            self._redis.hset(_SETTINGS, key, value)

    def settings_with_prefix(self, prefix: str) -> dict[str, str]:
        return {
            k.decode(): v.decode() for k, v in self._redis.hgetall(_SETTINGS).items()
            if k.decode().startswith(prefix)
        }

    def end_session(self, session_id: str) -> Session | None:
        found = self._end_session(
            keys=[_SESSION_PREFIX + session_id], args=[session_id, _NAME_PREFIX, _HOLDER_PREFIX]
        )
        return Session(session_id, found[0].decode(), found[2] == b"1") if found else None

    def find_user(self, key: str) -> tuple[str, str] | None:
        holder = self._redis.get(_HOLDER_PREFIX + key)
        if holder is None:
            return None
        session, _, name = holder.decode().partition("\t")
        return name, session

    def close(self) -> None:
        self._redis.close()


# Every method answers an outage with Unavailable.
for _class in (RedisStorage, RedisLiveState):
    for _name, _method in list(vars(_class).items()):
        if not _name.startswith("__") and callable(_method):
            setattr(_class, _name, _translating(_method))
