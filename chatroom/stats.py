"""Live figures for the stats page: rates per second and delivery latency, of this process."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .periodic import Periodic

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
        self._last = self._counts()
        self._sampler = Periodic(1.0, self._sample)
        self._also: tuple[Callable[[], None], ...] = ()

    def start(self, *also: Callable[[], None]) -> None:
        """Sample every second, and call each of ``also`` then too (the one sampling loop)."""
        self._also = also
        self._sampler.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._sampler.stop()

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

    def _counts(self) -> dict[str, int]:
        return {"events": self._fanout.events, "deliveries": self._fanout.deliveries}

    def _sample(self) -> None:
        now = self._counts()
        self._rates = {name: float(now[name] - self._last[name]) for name in now}
        self._last = now
        for sample in self._also:
            sample()
