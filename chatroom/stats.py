"""Live figures for the stats page: rates per second and delivery latency, of this process."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import gevent

if TYPE_CHECKING:
    from .broker import Broker
    from .hub import Hub

# Latency samples kept: the last this many writes to streams.
_SAMPLES = 2000


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class LiveStats:
    """Samples the hub's counters every second and keeps recent delivery latencies."""

    def __init__(self, hub: Hub, broker: Broker) -> None:
        self._hub = hub
        self._broker = broker
        self._latencies: deque[float] = deque(maxlen=_SAMPLES)
        self._rates = {"events": 0.0, "deliveries": 0.0}
        self._sampler: gevent.Greenlet | None = None

    def record_latency(self, seconds: float) -> None:
        """Note how long the oldest event of one write waited for it."""
        self._latencies.append(seconds)

    def snapshot(self) -> dict[str, Any]:
        """Return the figures the stats page shows."""
        if self._sampler is None:
            self._sampler = gevent.spawn(self._sample_forever)
        samples = list(self._latencies)
        p50, p99 = _percentile(samples, 0.5), _percentile(samples, 0.99)
        return {
            "broker": self._broker.kind,
            "healthy": self._broker.healthy,
            "listeners": len(self._hub),
            "messages_per_second": round(self._rates["events"], 1),
            "deliveries_per_second": round(self._rates["deliveries"], 1),
            "latency_ms": {
                "p50": None if p50 is None else round(p50 * 1000, 2),
                "p99": None if p99 is None else round(p99 * 1000, 2),
            },
        }

    def _sample_forever(self) -> None:
        hub = self._hub
        last = {"events": hub.events, "deliveries": hub.deliveries}
        while True:
            gevent.sleep(1.0)
            now = {"events": hub.events, "deliveries": hub.deliveries}
            self._rates = {name: float(now[name] - last[name]) for name in now}
            last = now
