"""One loop that keeps alive, in storage, what this process holds: names and presence.

Both are kept with an expiry, so that a process that dies (or loses Redis) lets go of
them by itself; while it runs, this loop renews them well before they expire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .periodic import Periodic

log = logging.getLogger(__name__)

# Seconds between renewals; what is renewed lasts longer than this.
RENEW_EVERY = 10.0


class Renewal(Periodic):
    """Runs each of its rounds every :data:`RENEW_EVERY` seconds, one after another."""

    def __init__(self, *rounds: Callable[[], None]) -> None:
        super().__init__(RENEW_EVERY, self._round)
        self._rounds = rounds

    def _round(self) -> None:
        for renew in self._rounds:
            try:
                renew()
            except Exception:  # one failing round must not stop the others
                log.exception("renewing failed")
