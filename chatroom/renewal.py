"""One loop that keeps alive, in storage, what this process holds: names and presence.

Both are kept with an expiry, so that a process that dies (or loses Redis) lets go of
them by itself; while it runs, this loop renews them well before they expire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent

log = logging.getLogger(__name__)

# Seconds between renewals; what is renewed lasts longer than this.
RENEW_EVERY = 10.0


class Renewal:
    """Runs each of its rounds every :data:`RENEW_EVERY` seconds, one after another."""

    def __init__(self, *rounds: Callable[[], None]) -> None:
        self._rounds = rounds
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        """Start the loop."""
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """Stop renewing; what was held then expires from storage by itself."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _run(self) -> None:
        while True:
            gevent.sleep(RENEW_EVERY)
            for renew in self._rounds:
                try:
                    renew()
                except Exception:  # one failing round must not stop the others
                    log.exception("renewing failed")
