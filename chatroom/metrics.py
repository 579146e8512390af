"""Prometheus metrics, correct with several worker processes.

The hot path counts deliveries in plain integers on the fan-out; they are copied into the
Prometheus counters when ``/metrics`` is read and, with several workers, every second (so
that the worker answering a scrape sees the others' figures through the shared files of
``PROMETHEUS_MULTIPROC_DIR``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from .chat import Chat

LISTENERS = Gauge(
    "chatroom_listeners", "Open event streams.", multiprocess_mode="livesum"
)
PUBLISHED = Counter("chatroom_events_published", "Events published (messages and room events).")
DELIVERIES = Counter("chatroom_deliveries", "Events put on a listener's buffer.")
DROPPED = Counter(
    "chatroom_slow_listeners_dropped", "Listeners disconnected because their buffer was full."
)
RECONNECTS = Counter("chatroom_broker_reconnects", "Times the broker reconnected after an outage.")
REQUESTS = Counter("chatroom_http_requests", "HTTP requests answered, by status.", ["status"])

CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_dir() -> str | None:
    """Return the folder where workers share their metrics, if there are several."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Sync:
    """Copies the fan-out's and broker's plain counters into the Prometheus metrics."""

    def __init__(self, chat: Chat) -> None:
        self._chat = chat
        self._seen = {"deliveries": 0, "dropped": 0, "reconnects": 0}

    def __call__(self) -> None:
        fanout, broker = self._chat.fanout, self._chat.broker
        LISTENERS.set(len(fanout))
        for name, metric, value in (
            ("deliveries", DELIVERIES, fanout.deliveries),
            ("dropped", DROPPED, fanout.dropped),
            ("reconnects", RECONNECTS, broker.reconnects),
        ):
            if value > self._seen[name]:
                metric.inc(value - self._seen[name])
                self._seen[name] = value

def render() -> bytes:
    """Return every metric in Prometheus text format, summed over workers."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
