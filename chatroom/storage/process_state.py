"""What the in-process mode keeps in memory only: who is online, and rate-limit windows.

Neither needs to outlive the process, and one process serves the whole chat, so plain
dictionaries do (with Redis, the same live in Redis, shared by every process).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable

from ..config import RateLimit


class ProcessState:
    """The presence and rate-limit part of :class:`~chatroom.storage.Storage`, in memory."""

    def __init__(self) -> None:
        # key -> (start of its window, count in it, the window's length)
        self._rates: dict[str, tuple[float, int, float]] = {}
        # room -> user -> the processes through which the user is online (here, one).
        self._online: defaultdict[str, defaultdict[str, set[str]]] = defaultdict(
            lambda: defaultdict(set)
        )

    def rate_hit(self, key: str, limit: RateLimit) -> float:
        now = time.monotonic()
        start, count, _window = self._rates.get(key, (now, 0, limit.seconds))
        if now - start >= limit.seconds:
            start, count = now, 0
        if count >= limit.count:
            return max(0.001, start + limit.seconds - now)
        self._rates[key] = (start, count + 1, limit.seconds)
        if len(self._rates) > 10_000:  # forget windows that ended
            self._rates = {k: v for k, v in self._rates.items() if now - v[0] < v[2]}
        return 0.0

    def presence_add(self, room: str, user: str, process: str, ttl: float) -> bool:
        processes = self._online[room][user]
        processes.add(process)
        return len(processes) == 1

    def presence_remove(self, room: str, user: str, process: str) -> bool:
        users = self._online[room]
        users[user].discard(process)
        if users[user]:
            return False
        del users[user]
        return True

    def presence_refresh(
        self, entries: Iterable[tuple[str, str]], process: str, ttl: float
    ) -> None:
        pass  # a single process never stops renewing without stopping altogether

    def presence_expire(self) -> list[tuple[str, str]]:
        return []

    def online(self, room: str) -> list[str]:
        return sorted(self._online[room]) if room in self._online else []
