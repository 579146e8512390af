"""Live figures for the stats page: rates per second and delivery latency, of this process."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

if TYPE_CHECKING:
    from .broker import Broker
    from .fanout import Fanout


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class LiveStats:
    """Samples the fan-out's counters every second and keeps recent delivery latencies."""

    def __init__(self, fanout: Fanout, broker: Broker) -> None:
        self._fanout = fanout
        self._broker = broker
        self._rates = {"events": 0.0, "deliveries": 0.0}
        self._sampler: gevent.Greenlet | None = None
        self._also: tuple[Callable[[], None], ...] = ()

    def start(self, *also: Callable[[], None]) -> None:
        """Sample every second, and call each of ``also`` then too (the one sampling loop)."""
        self._also = also
        self._sampler = gevent.spawn(self._sample_forever)

    def stop(self) -> None:
        """Stop sampling."""
        if self._sampler is not None:
            self._sampler.kill(block=False)

    def snapshot(self) -> dict[str, Any]:
        """Return the figures the stats page shows."""
        samples = list(self._fanout.fanout_seconds)
        p50, p99 = _percentile(samples, 0.5), _percentile(samples, 0.99)
        return {
            "broker": self._broker.kind,
            "healthy": self._broker.healthy,
            "listeners": len(self._fanout),
            "messages_per_second": round(self._rates["events"], 1),
            "deliveries_per_second": round(self._rates["deliveries"], 1),
            "latency_ms": {
                "p50": None if p50 is None else round(p50 * 1000, 2),
                "p99": None if p99 is None else round(p99 * 1000, 2),
            },
        }

    def _sample_forever(self) -> None:
        fanout = self._fanout
        last = {"events": fanout.events, "deliveries": fanout.deliveries}
        while True:
            gevent.sleep(1.0)
            now = {"events": fanout.events, "deliveries": fanout.deliveries}
            self._rates = {name: float(now[name] - last[name]) for name in now}
            last = now
            for sample in self._also:
                sample()
