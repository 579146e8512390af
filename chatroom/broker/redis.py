"""The Redis broker: one subscription per process, whatever the number of listeners."""

from __future__ import annotations

import logging
import time

import gevent
import redis
from gevent.event import Event as Signal

from ..events import Draft, Event
from ..i18n import _
from ..identity import SESSION_TTL
from ..storage import Unavailable
from ..storage.redis import RedisStorage
from . import Broker, Deliver, Held, Resync, redact
from .redis_link import RedisLink

log = logging.getLogger(__name__)

CHANNEL = "chatroom:events"
_BACKOFF_MAX = 2.0
# A failover that announced no end within this long (seconds) no longer holds posts back.
_FENCE_MAX = 15.0
# How long names put back after an outage are held; open streams renew them soon after.
_NAME_HOLD = 60.0


class RedisBroker(Broker):
    """Publishes through the storage's atomic append; one greenlet reads the subscription."""

    kind = "redis"

    def __init__(self, link: RedisLink, storage: RedisStorage, url: str) -> None:
        self.storage = storage
        self._link = link
        self._redis = link.client
        self._url = url
        # The highest id this process has seen: new ids are always above it, even if
        # Redis restarts empty.
        self._last_id = storage.last_id()
        self._subscribed = Signal()
        self._closing = False
        self._reconnects = 0
        self._reader: gevent.Greenlet | None = None
        self._watchers: list[gevent.Greenlet] = []
        # Set when Sentinel announced a new primary: the subscription moves to it.
        self._switch = False
        # While a failover is under way, until this time (monotonic), posts are refused.
        self._fenced_until = 0.0
        self._deliver: Deliver = lambda event: None
        self._offer: Deliver | None = None
        self._resync: Resync = lambda: None
        self._held: Held = lambda: ()

    def start(
        self, deliver: Deliver, resync: Resync, held: Held, offer: Deliver | None = None
    ) -> None:
        self._deliver = deliver
        self._offer = offer
        self._resync = resync
        self._held = held
        self._reader = gevent.spawn(self._read)
        if self._link.service is not None:
            self._watchers = self._link.watch(self._failover, lambda: self._closing)
        # Events published before the subscription is in place would never arrive here.
        self._subscribed.wait(5)

    @property
    def healthy(self) -> bool:
        return self._subscribed.is_set() and self._fenced_until <= time.monotonic()

    @property
    def reconnects(self) -> int:
        return self._reconnects

    def publish(self, draft: Draft) -> tuple[Event, bool]:
        if self._fenced_until > time.monotonic():
            raise Unavailable("Redis is failing over to a new primary.")
        event, fresh = self.storage.append(draft, floor=self._last_id, publish_to=CHANNEL)
        self._last_id = max(self._last_id, event.id or 0)
        if fresh and self._offer is not None:
            # This process's listeners need not wait for the event to come back through
            # the subscription (the poster's request would finish first).
            try:
                self._offer(event)
            except Exception:  # the post is stored: its answer must not fail
                log.exception("delivering %r failed", event)
        return event, fresh

    def announce(self, event: Event) -> None:
        try:
            self._redis.publish(CHANNEL, event.to_record())
        except (redis.RedisError, OSError) as exc:
            raise Unavailable(f"Redis cannot be reached ({exc}).") from None

    def describe(self) -> str:
        if self._link.service is None:
            return _("Redis at {url}").format(url=redact(self._url))
        return _("Redis service {service} through Sentinel at {url}, primary now {primary}").format(
            service=self._link.service, url=redact(self._url),
            primary=self._link.primary() or _("unknown"),
        )

    def whereabouts(self) -> dict[str, str | None]:
        if self._link.service is None:
            return {"primary": self._link.primary()}
        return {"service": self._link.service, "primary": self._link.primary()}

    def close(self) -> None:
        self._closing = True
        for greenlet in (self._reader, *self._watchers):
            if greenlet is not None:
                greenlet.kill(block=True, timeout=2)
        super().close()

    def _failover(self, stage: str) -> None:
        # Sentinel lets the old primary take writes until it is told to be a replica, and
        # it then drops them: a post answered 201 meanwhile would be lost. So from the
        # failover's start to the new primary, posts are refused (503, sent again).
        if stage == "start":
            log.warning("Sentinel is failing over %s: posts wait", self._link.service)
            self._fenced_until = time.monotonic() + _FENCE_MAX
            return
        self._fenced_until = 0.0
        if stage == "switch":
            log.warning("Sentinel promoted a new primary for %s", self._link.service)
            # Idle connections to the old primary close now, busy ones once their command
            # is done (the pool no longer owns them), and the subscription moves too.
            try:
                self._redis.connection_pool.get_master_address()
            except (redis.RedisError, OSError) as exc:
                log.warning("could not ask Sentinel for the new primary (%s)", exc)
            self._switch = True

    def _read(self) -> None:
        backoff = 0.1
        lost = False
        while not self._closing:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                if lost:
                    self._recover()
                    lost = False
                self._subscribed.set()
                backoff = 0.1
                while not self._closing:
                    # A timeout, not listen(): the loop then also notices a Redis that
                    # went silent, through redis-py's health checks.
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self._receive(message["data"])
                    if self._switch:
                        self._switch = False
                        raise redis.ConnectionError("the primary changed")
            except Exception as exc:  # whatever happens, this loop must not end
                if not isinstance(exc, (redis.RedisError, OSError, Unavailable)):
                    log.exception("the Redis subscription failed; reconnecting")
                elif not lost:
                    log.warning("lost Redis at %s (%s); reconnecting", redact(self._url), exc)
                lost = True
                self._subscribed.clear()
                gevent.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            finally:
                pubsub.close()

    def _recover(self) -> None:
        # Redis may have come back empty: ids stay above what this process has seen and
        # its streams keep their names, before a new epoch lets posts and logins in. Then
        # whatever other processes published meanwhile.
        self.storage.restore(self._last_id, self._held(), _NAME_HOLD, SESSION_TTL)
        self._reconnects += 1
        log.warning("Redis at %s is back", redact(self._url))
        self._resync()

    def _receive(self, data: bytes) -> None:
        # One bad payload is logged and skipped: it must never stop the subscription.
        try:
            event = Event.from_record(data)
        except ValueError:
            log.warning("skipped a malformed event from Redis: %r", data[:200])
            return
        if event.id is not None:
            self._last_id = max(self._last_id, event.id)
        try:
            self._deliver(event)
        except Exception:
            log.exception("delivering %r failed", event)
