"""Where Redis is: a ``redis://`` or ``rediss://`` URL, or a service behind Redis Sentinel.

``redis+sentinel://[[user]:password@]host:port[,host:port…]/<service>[/db]`` (and
``rediss+sentinel://`` for TLS to the primary) names the sentinels to ask and the service
they watch. redis-py's ``from_url`` does not read such URLs, so they are parsed here and
the client comes from ``Sentinel(...).master_for()``: every new connection asks the
sentinels for the current primary, and a connection to a primary that was demoted fails
with a connection error, so requests and the subscription follow a failover by
themselves. The password is the primary's; ``?sentinel_password=`` gives the sentinels'
own, if they have one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import gevent
import redis
from redis.sentinel import Sentinel, SentinelConnectionPool

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
SENTINEL_PORT = 26379
# How long one sentinel may take to answer who the primary is, before the next is asked.
_SENTINEL_TIMEOUT = 0.5


# What each sentinel announcement of a failover means to the chat.
_FAILOVER_EVENTS = {"+try-failover": "start", "+switch-master": "switch", "+failover-end": "end"}


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool, with the blocking pool's bounded size and wait (see open_link)."""


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False


def is_sentinel_url(url: str) -> bool:
    """True for the ``redis+sentinel://`` and ``rediss+sentinel://`` schemes."""
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Read a Sentinel URL; raise ValueError saying what is wrong with it."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in SENTINEL_SCHEMES:
        raise ValueError("a Sentinel URL starts with redis+sentinel://")
    parts = urlsplit("//" + rest)
    auth, _, hosts = parts.netloc.rpartition("@")
    username, _, password = auth.partition(":") if auth else ("", "", "")
    sentinels = tuple(_host_port(h) for h in hosts.split(",") if h.strip())
    if not sentinels:
        raise ValueError("name at least one sentinel, as host:port")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("the path is /<service> or /<service>/<db>, e.g. /mymaster/0")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValueError(f"the database must be a number, not {path[1]!r}")
        db = int(path[1])
    query = parse_qs(parts.query)
    return SentinelUrl(
        sentinels, path[0], db, unquote(username) or None, unquote(password) or None,
        (query.get("sentinel_password") or [None])[0], SENTINEL_SCHEMES[scheme.lower()],
    )


def _host_port(text: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [::1]:26379
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"{text!r} is not host:port")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{port!r} is not a port")
    return host, int(port) if port else SENTINEL_PORT


class RedisLink:
    """A client for the chat's Redis, and what to say about where it is."""

    def __init__(self, client: redis.Redis, sentinel: Sentinel | None = None,
                 service: str | None = None) -> None:
        self.client = client
        self._sentinel = sentinel
        self.service = service

    def watch(self, on_failover: Callable[[str], None], stop: Callable[[], bool]) -> list[Any]:
        """Follow every sentinel's announcements of failovers of the service.

        ``on_failover`` is called with ``"start"`` when a sentinel begins one (before it
        promotes a replica), ``"switch"`` once a new primary is in place and ``"end"`` when
        one ends without a switch. Every sentinel is followed, as only the one that leads
        a failover announces its start. Returns the greenlets, which end once ``stop()``.
        """
        assert self._sentinel is not None
        return [gevent.spawn(self._follow, node, on_failover, stop)
                for node in self._sentinel.sentinels]

    def _follow(self, node: redis.Redis, on_failover: Callable[[str], None],
                stop: Callable[[], bool]) -> None:
        while not stop():
            pubsub = node.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(*_FAILOVER_EVENTS)
                pubsub.psubscribe("-failover-abort-*")
                while not stop():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    channel = message["channel"].decode()
                    words = message["data"].decode(errors="replace").split()
                    # "+switch-master <service> …"; the others "master <service> …".
                    at = 0 if channel == "+switch-master" else 1
                    if len(words) > at and words[at] == self.service:
                        on_failover(_FAILOVER_EVENTS.get(channel, "end"))
            except (redis.RedisError, OSError):
                gevent.sleep(1.0)  # this sentinel is away, or said something odd
            finally:
                pubsub.close()

    def primary(self) -> str | None:
        """Return ``host:port`` of the Redis that takes writes now, None if unknown."""
        if self._sentinel is None:
            kwargs = self.client.connection_pool.connection_kwargs
            if "path" in kwargs:
                return kwargs["path"]
            return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        # The pool learns the primary at each new connection and at each switch: a health
        # check asks the sentinels only before the first.
        address = self.client.connection_pool.master_address
        if address is None:
            try:
                address = self._sentinel.discover_master(self.service)
            except (redis.RedisError, OSError):
                return None
        host, port = address
        return f"{host}:{port}"


def open_link(url: str, *, connections: int, wait: float, connect_timeout: float,
              **options: Any) -> RedisLink:
    """Return a client for ``url`` (not yet connected); raise ValueError for a bad URL.

    The pool blocks: past ``connections``, requests wait up to ``wait`` seconds for one
    instead of failing with "Too many connections" (redis-py's default pool).
    """
    if not is_sentinel_url(url):
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=connections, timeout=wait,
            socket_connect_timeout=connect_timeout, **options,
        )
        return RedisLink(redis.Redis(connection_pool=pool))
    target = parse_sentinel_url(url)
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": _SENTINEL_TIMEOUT, "socket_connect_timeout": _SENTINEL_TIMEOUT,
    }
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    client = sentinel.master_for(
        target.service, connection_pool_class=_BlockingSentinelPool,
        max_connections=connections, timeout=wait, socket_connect_timeout=connect_timeout,
        db=target.db, username=target.username, password=target.password, ssl=target.ssl,
        **options,
    )
    return RedisLink(client, sentinel, target.service)
