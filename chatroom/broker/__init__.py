"""The broker: gives events their ids and carries them to every process's fan-out.

One interface, two implementations, chosen by :func:`open_broker`:
:mod:`.memory` (one process, history in SQLite) and :mod:`.redis` (any number of
processes and machines sharing one Redis, which also keeps the history).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

from ..config import Config
from ..events import Draft, Event
from ..i18n import _
from ..storage import Session, Storage

log = logging.getLogger(__name__)

# Connections one process opens to Redis at most, and how long a request waits for one.
_REDIS_CONNECTIONS = 100
_REDIS_POOL_WAIT = 30.0

Deliver = Callable[[Event], None]
Resync = Callable[[], None]
# The (name key, session) of every open stream of this process.
Held = Callable[[], Iterable[tuple[str, Session]]]


class BrokerUnavailable(RuntimeError):
    """The configured broker cannot be used; the message says why and what to do."""


class Broker(ABC):
    """Moves events between the processes of one chat, in id order."""

    kind: str
    storage: Storage

    @abstractmethod
    def start(
        self, deliver: Deliver, resync: Resync, held: Held, offer: Deliver | None = None
    ) -> None:
        """Begin handing every event, from any process, to ``deliver`` (once per process).

        ``deliver`` keeps the order (it skips repeats and fills gaps from storage). After an
        outage, the sessions ``held()`` lists (and their names) are put back if the store
        lost them, and ``resync()`` hands over, from storage, what other processes
        published meanwhile. A broker whose own events come back to it the long way may
        hand each to ``offer`` as soon as it is published, which delivers it at once if
        nothing comes before it (deliver then skips it).
        """

    @abstractmethod
    def publish(self, draft: Draft) -> tuple[Event, bool]:
        """Give ``draft`` the next id, store it and send it to every process.

        Return the event and True; or the event stored earlier under ``draft.key`` and
        False, having sent nothing (see :meth:`Storage.append`).
        """

    @abstractmethod
    def announce(self, event: Event) -> None:
        """Send an event without an id (presence) to every process; it is not stored."""

    @property
    def healthy(self) -> bool:
        """True while events can be published."""
        return True

    @property
    def reconnects(self) -> int:
        """How many times the broker has reconnected after losing its connection."""
        return 0

    @abstractmethod
    def describe(self) -> str:
        """Say in a few words which broker this is and where it keeps things."""

    def whereabouts(self) -> dict[str, str | None]:
        """Return what ``/healthz`` says of where the broker is (Redis: service, primary)."""
        return {}

    def close(self) -> None:
        """Stop receiving and release connections and files."""
        self.storage.close()


def open_broker(config: Config) -> Broker:
    """Open the broker the configuration asks for (SPEC "Broker choice").

    ``--memory`` means in-process; a Redis URL means that Redis or an error; neither
    means the default local Redis if it answers, else in-process.
    """
    if config.memory:
        return _memory(config)
    if config.redis_url:
        return _redis(config, config.redis_url, connect_timeout=3.0)
    try:
        return _redis(config, config.default_redis_url, connect_timeout=0.5)
    except BrokerUnavailable:
        log.debug("no Redis at %s, using the in-process broker", config.default_redis_url)
        return _memory(config)


def _memory(config: Config) -> Broker:
    # Local imports keep the choice explicit and let PyInstaller see both modules.
    from ..storage.sqlite import SqliteStorage
    from .memory import MemoryBroker

    path = config.prepare_data_dir() / "chatroom.sqlite3"
    return MemoryBroker(SqliteStorage(path, config.history))


def _redis(config: Config, url: str, connect_timeout: float) -> Broker:
    import redis

    from ..storage.redis import RedisStorage
    from .redis import RedisBroker
    from .redis_link import open_link

    try:
        # When a class reconnects at once, a thousand streams start together: past the
        # pool's size they wait their turn. Ten thousand streams starting at once keep
        # two cores busy for well over 10 s.
        link = open_link(
            url, connections=_REDIS_CONNECTIONS, wait=_REDIS_POOL_WAIT,
            connect_timeout=connect_timeout, socket_timeout=10, health_check_interval=30,
        )
        link.client.ping()
        storage = RedisStorage(link.client, config.history, replicas=config.redis_replicas)
    except (redis.RedisError, ValueError, OSError) as exc:
        raise BrokerUnavailable(_(
            "Cannot use Redis at {url} ({reason}). Start Redis there, fix the URL, "
            "or leave out --redis to use the in-process broker."
        ).format(url=redact(url), reason=exc)) from None
    return RedisBroker(link, storage, url)


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, fit for logs and screens."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
