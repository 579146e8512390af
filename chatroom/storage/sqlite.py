"""Storage in an embedded SQLite file: the in-process mode's memory across restarts.

Only one process uses it (the in-process broker has one), so what need not outlive the
process, who is online and rate-limit counters, stays in plain dictionaries.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from ..config import RateLimit
from ..events import Draft, Event, room_channel
from . import Room, Storage, sort_rooms

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: an id is never given twice
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_channel ON events (channel, id);
CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    created_by TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS filed (
    channel TEXT NOT NULL,
    id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (channel, id)
);
CREATE TABLE IF NOT EXISTS users (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS names (
    key TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    expires REAL NOT NULL
);
"""

# Trimming a channel costs a query, so it runs once per this many appends to it.
_TRIM_EVERY = 32


class SqliteStorage(Storage):
    """One SQLite connection, used by one process (gevent runs every greenlet on one thread)."""

    def __init__(self, path: Path, history: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL with synchronous=NORMAL: a committed message survives the process being
        # killed, at a fraction of the cost of a full fsync per message.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._history = history
        self._appends: dict[str, int] = {}
        self._rates: dict[str, tuple[float, int]] = {}
        # room -> user -> the processes through which the user is online (here, one).
        self._online: defaultdict[str, defaultdict[str, set[str]]] = defaultdict(
            lambda: defaultdict(set)
        )
        self.ensure_general()

    def append(self, draft: Draft) -> Event:
        with self._db:
            self._db.execute("BEGIN")
            event_id = self._db.execute(
                "INSERT INTO events (channel, kind, body) VALUES (?, ?, ?)",
                (draft.channel, draft.kind, draft.body),
            ).lastrowid
            self._db.executemany(
                "INSERT INTO filed (channel, id) VALUES (?, ?)",
                [(channel, event_id) for channel in draft.also],
            )
        self._count_append(draft.channel, "events")
        for channel in draft.also:
            self._count_append(channel, "filed")
        return Event.logged(event_id, draft.channel, draft.kind, draft.body)

    def _count_append(self, channel: str, table: str) -> None:
        count = self._appends.get(channel, 0) + 1
        if count >= _TRIM_EVERY:
            count = 0
            self._db.execute(
                f"DELETE FROM {table} WHERE channel = ? AND id < ("
                f" SELECT id FROM {table} WHERE channel = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (channel, channel, self._history - 1),
            )
        self._appends[channel] = count

    def history(self, channel: str, limit: int, before: int | None = None) -> list[Event]:
        rows = self._db.execute(
            "SELECT id, channel, kind, body FROM events WHERE channel = ? AND id < ?"
            " ORDER BY id DESC LIMIT ?",
            (channel, before if before is not None else 2**63 - 1, limit),
        ).fetchall()
        return [Event.logged(*row) for row in reversed(rows)]

    def since(self, channels: Iterable[str], after: int) -> list[Event]:
        channels = list(channels)
        marks = ",".join("?" * len(channels))
        rows = self._db.execute(
            f"SELECT id, channel, kind, body FROM events WHERE channel IN ({marks}) AND id > ?"
            " UNION SELECT e.id, e.channel, e.kind, e.body FROM filed f JOIN events e USING (id)"
            f" WHERE f.channel IN ({marks}) AND f.id > ? ORDER BY 1",
            (*channels, after, *channels, after),
        ).fetchall()
        return [Event.logged(*row) for row in rows]

    def last_id(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return row[0] if row else 0

    def raise_last_id(self, floor: int) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if self._db.execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'events'", (floor,)
            ).rowcount == 0:
                self._db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (floor,)
                )

    def create_room(self, room: Room) -> bool:
        cur = self._db.execute(
            "INSERT OR IGNORE INTO rooms (name, created_by, created_at) VALUES (?, ?, ?)",
            (room.name, room.created_by, time.time()),
        )
        return cur.rowcount == 1

    def get_room(self, name: str) -> Room | None:
        row = self._db.execute(
            "SELECT name, created_by FROM rooms WHERE name = ?", (name,)
        ).fetchone()
        return Room(*row) if row else None

    def list_rooms(self) -> list[Room]:
        rows = self._db.execute("SELECT name, created_by FROM rooms")
        return sort_rooms(Room(*row) for row in rows)

    def delete_room(self, name: str) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM rooms WHERE name = ?", (name,))
            self._db.execute("DELETE FROM events WHERE channel = ?", (room_channel(name),))

    def claim_name(self, key: str, session: str, hold: float) -> bool:
        now = time.time()
        cur = self._db.execute(
            "INSERT INTO names (key, session, expires) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET session = excluded.session,"
            " expires = excluded.expires"
            " WHERE names.session = excluded.session OR names.expires < ?",
            (key, session, now + hold, now),
        )
        return cur.rowcount == 1

    def release_name(self, key: str, session: str) -> None:
        self._db.execute("DELETE FROM names WHERE key = ? AND session = ?", (key, session))

    def remember_user(self, key: str, name: str) -> None:
        self._db.execute(
            "INSERT INTO users (key, name) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET name = excluded.name", (key, name),
        )

    def find_user(self, key: str) -> str | None:
        row = self._db.execute("SELECT name FROM users WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def rate_hit(self, key: str, limit: RateLimit) -> float:
        now = time.monotonic()
        start, count = self._rates.get(key, (now, 0))
        if now - start >= limit.seconds:
            start, count = now, 0
        if count >= limit.count:
            return max(0.001, start + limit.seconds - now)
        self._rates[key] = (start, count + 1)
        if len(self._rates) > 10_000:  # forget windows that ended
            self._rates = {k: v for k, v in self._rates.items() if now - v[0] < limit.seconds}
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

    def close(self) -> None:
        self._db.close()
