"""Storage in Redis: shared by every process and machine that uses the same Redis."""

from __future__ import annotations

import functools
import heapq
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis

from ..config import RateLimit
from ..events import Draft, Event, new_epoch, room_channel
from . import KEY_TTL, Room, Session, Storage, Unavailable

_SEQ = "chatroom:seq"
# The store's life: set when the chat first uses this Redis, and again by the first
# process that finds the Redis empty, once it has put back what it knows (see
# RedisBroker). Until then, posts and logins wait: a 503, never an id or a name given
# out by a Redis that lost its memory.
_EPOCH = "chatroom:epoch"
_ROOMS = "chatroom:rooms"
_PRESENCE_ROOMS = "chatroom:presence-rooms"
_SETTINGS = "chatroom:settings"

# One atomic step: the next id (never at or below the floor the caller has seen, so ids
# do not go backwards when Redis comes back empty), the record in each log it is filed
# under, the logs trimmed, and, when asked, the record published. Publishing inside the
# step is what makes every process receive events in id order, whoever posted them.
# With an idempotency key (ARGV[5] its lifetime in ms), a record already stored under it
# is returned instead, and nothing is written.
# The id travels as the text Redis keeps: Lua's numbers print as 1e+14 from 10^14 on.
_APPEND = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  return redis.error_reply('NOEPOCH')
end
if ARGV[5] ~= '' then
  local prior = redis.call('GET', KEYS[3])
  if prior then
    return {prior}
  end
end
local id = redis.call('INCR', KEYS[1])
if id <= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[3])
  redis.call('INCR', KEYS[1])
end
local id_text = redis.call('GET', KEYS[1])
local record = epoch .. '-' .. id_text .. ARGV[1]
for i = 4, #KEYS do
  redis.call('ZADD', KEYS[i], id_text, record)
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -tonumber(ARGV[2]) - 1)
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[3], record, 'PX', ARGV[5])
end
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[4], record)
end
return {id_text, epoch}
"""

# Fixed-window counter: the first hit of a window starts its expiry.
_RATE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if count > tonumber(ARGV[1]) then
  return redis.call('PTTL', KEYS[1])
end
return 0
"""

# Presence: one sorted set per room; members are "<user>\t<process>", scored by the time
# (ms) the process last promised to renew them by. A user is online while any of their
# members is live, so several processes and tabs count once.
_PRESENCE_HAS_USER = """
local function live_user(key, user, now)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, now, '+inf')) do
    if string.sub(member, 1, #user + 1) == user .. '\t' then
      return true
    end
  end
  return false
end
"""
_PRESENCE_ADD = _PRESENCE_HAS_USER + """
local was_online = live_user(KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1] .. '\t' .. ARGV[2])
redis.call('SADD', KEYS[2], ARGV[5])
return was_online and 0 or 1
"""
_PRESENCE_REMOVE = _PRESENCE_HAS_USER + """
redis.call('ZREM', KEYS[1], ARGV[1] .. '\t' .. ARGV[2])
return live_user(KEYS[1], ARGV[1], ARGV[3]) and 0 or 1
"""
_PRESENCE_EXPIRE = _PRESENCE_HAS_USER + """
local gone = {}
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = KEYS[2] .. room
  local stale = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. ARGV[1])
  if #stale > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[1])
    for _, member in ipairs(stale) do
      local user = string.match(member, '^(.*)\t')
      if user and not live_user(key, user, ARGV[1]) then
        table.insert(gone, room)
        table.insert(gone, user)
      end
    end
  end
end
return gone
"""

# Put back what a process knows into a Redis that lost it: ids go on above what it has
# seen. A Redis that came back empty, or a primary promoted without the last writes (its
# sequence is behind), starts a new epoch, so that no listener is ever sent an id it saw
# for another event; a process that finds this done already changes nothing.
_RESTORE = """
local behind = (tonumber(redis.call('GET', KEYS[1])) or 0) < tonumber(ARGV[1])
if behind then
  redis.call('SET', KEYS[1], ARGV[1])
end
if behind or redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[2])
end
return redis.call('GET', KEYS[2])
"""

_CLAIM = """
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('NOEPOCH')
end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
"""

# A session: its record, and the name's holder (whom private messages to it reach).
_START_SESSION = """
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'key', ARGV[2], 'host', ARGV[3],
           'started', ARGV[6], 'address', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], ARGV[4] .. '\t' .. ARGV[1], 'PX', ARGV[5])
"""

# Ending a session frees its name and stops private messages reaching it, at once.
_END_SESSION = """
local found = redis.call('HMGET', KEYS[1], 'name', 'key', 'host')
if not found[1] then
  return false
end
redis.call('DEL', KEYS[1])
local name_key = ARGV[2] .. found[2]
if redis.call('GET', name_key) == ARGV[1] then
  redis.call('DEL', name_key)
end
local holder_key = ARGV[3] .. found[2]
local holder = redis.call('GET', holder_key)
if holder and string.sub(holder, 1, #ARGV[1] + 1) == ARGV[1] .. '\t' then
  redis.call('DEL', holder_key)
end
return found
"""

_MAKE_HOST = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'host', '1')
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
"""


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


_PRESENCE_PREFIX = "chatroom:presence:"
T = TypeVar("T")


def _room(name: str, value: bytes) -> Room:
    created_by, _, creator = value.decode().partition("\t")
    return Room(name, created_by or None, creator or None)


def _now_ms() -> int:
    return int(time.time() * 1000)


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


class RedisStorage(Storage):
    """History as one sorted set per channel, scored by id; rooms in a hash; names as keys."""

    def __init__(self, client: redis.Redis, history: int, replicas: int = 0) -> None:
        self._redis = client
        self._history = history
        self._replicas = replicas
        self._append = client.register_script(_APPEND)
        self._restore = client.register_script(_RESTORE)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._start_session = client.register_script(_START_SESSION)
        self._end_session = client.register_script(_END_SESSION)
        self._make_host = client.register_script(_MAKE_HOST)
        self._rate = client.register_script(_RATE)
        self._presence_add = client.register_script(_PRESENCE_ADD)
        self._presence_remove = client.register_script(_PRESENCE_REMOVE)
        self._presence_expire = client.register_script(_PRESENCE_EXPIRE)
        self.ensure_general()
        self._redis.set(_EPOCH, new_epoch(), nx=True)

    def append(
        self, draft: Draft, *, floor: int = 0, publish_to: str = ""
    ) -> tuple[Event, bool]:
        """Store ``draft``; with ``publish_to``, publish its record there in the same step.

        With replicas required, the answer waits (Redis WAIT, on the connection that
        wrote) until that many replicas hold the event, and is Unavailable if they do not.
        """
        keys = [_SEQ, _EPOCH, _POSTED_PREFIX + draft.key,
                _log_key(draft.channel), *(_log_key(c) for c in draft.also)]
        args = [draft.tail(), self._history, floor, publish_to,
                _ms(KEY_TTL) if draft.key else ""]
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
        id_text, epoch = result
        event = Event.logged(int(id_text), draft.channel, draft.kind, draft.body, epoch.decode())
        return event, True

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
        name, host, started, address = self._redis.hmget(
            _SESSION_PREFIX + session_id, "name", "host", "started", "address"
        )
        if name is None:
            return None
        return Session(session_id, name.decode(), host == b"1", int(started or 0),
                       (address or b"").decode())

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

    def rate_hit(self, key: str, limit: RateLimit) -> float:
        window_ms = max(1, int(limit.seconds * 1000))
        wait_ms = self._rate(keys=[f"chatroom:rate:{key}"], args=[limit.count, window_ms])
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

    def close(self) -> None:
        self._redis.close()


# Every method answers an outage with Unavailable.
for _name, _method in list(vars(RedisStorage).items()):
    if not _name.startswith("__") and callable(_method):
        setattr(RedisStorage, _name, _translating(_method))
