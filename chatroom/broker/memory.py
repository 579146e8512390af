"""The in-process broker: one process, events handed straight to its fan-out."""

from __future__ import annotations

from ..events import Draft, Event
from ..i18n import _
from ..storage.sqlite import SqliteStorage
from . import Broker, Deliver, Held, Resync


class MemoryBroker(Broker):
    """Publishing is storing in SQLite then delivering, with no greenlet switch in between,
    so events reach listeners in id order."""

    kind = "memory"

    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage
        self._deliver: Deliver = lambda event: None

    def start(
        self, deliver: Deliver, resync: Resync, held: Held, offer: Deliver | None = None
    ) -> None:
        self._deliver = deliver  # publishing delivers at once: nothing to offer

    def publish(self, draft: Draft) -> tuple[Event, bool]:
        event, fresh = self.storage.append(draft)
        if fresh:
            self._deliver(event)
        return event, fresh

    def announce(self, event: Event) -> None:
        self._deliver(event)

    @property
    def healthy(self) -> bool:
        return self.storage.failure is None

    def describe(self) -> str:
        return _("the in-process broker (no Redis); history is kept on this computer")
