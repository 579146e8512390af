"""A greenlet that does one thing at a fixed interval, until stopped."""

from __future__ import annotations

from collections.abc import Callable

import gevent


class Periodic:
    """Calls ``tick`` every ``seconds``, in a greenlet of its own, from :meth:`start` on."""

    def __init__(self, seconds: float, tick: Callable[[], None]) -> None:
        self._seconds = seconds
        self._tick = tick
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        """Start, once (later calls change nothing)."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """Stop."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _run(self) -> None:
        while True:
            gevent.sleep(self._seconds)
            self._tick()
