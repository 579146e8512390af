"""The chat's shared parts: what every view and background task of one process uses."""

from __future__ import annotations

from dataclasses import dataclass

from . import metrics
from .broker import Broker
from .config import Config
from .events import Draft, Event
from .fanout import Fanout
from .identity import NameHolds, Sessions
from .presence import Presence
from .renewal import Renewal
from .stats import LiveStats
from .storage import Storage


@dataclass
class Chat:
    """Settings, broker (with its storage), fan-out, names, sessions, presence, stats, and
    the loop that renews names and presence."""

    config: Config
    broker: Broker
    fanout: Fanout
    names: NameHolds
    sessions: Sessions
    presence: Presence
    stats: LiveStats
    renewal: Renewal

    @property
    def storage(self) -> Storage:
        return self.broker.storage

    def publish(self, draft: Draft) -> Event:
        """Store ``draft`` with its id and send it to every listener of every process."""
        return self.post(draft)[0]

    def post(self, draft: Draft) -> tuple[Event, bool]:
        """Publish ``draft``; False with the earlier event if its key was posted already."""
        event, fresh = self.broker.publish(draft)
        if fresh:
            metrics.PUBLISHED.inc()
        return event, fresh

    def close(self) -> None:
        """Stop background work and release the broker, once the fan-out has ended the streams."""
        self.renewal.stop()
        self.presence.stop()
        self.stats.stop()
        self.broker.close()
