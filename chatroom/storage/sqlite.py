"""Storage in an embedded SQLite file: the in-process mode's memory across restarts.

Only one process uses it (the in-process broker has one), so what need not outlive the
process, who is online and rate-limit counters, stays in plain dictionaries
(:mod:`.process_state`). For the same reason what every post reads, its session, the
host's settings and its room, is read from the file once and then kept: every write to
them goes through this object, which forgets what it changes before it writes.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from ..config import RateLimit
from ..events import Draft, Event, new_epoch, room_channel
from . import (
    KEY_TTL,
    NameTaken,
    RateExceeded,
    Room,
    Session,
    Stale,
    Storage,
    StorageFailed,
)
from .process_state import ProcessState
from .sqlite_file import open_file

T = TypeVar("T")

# Trimming a channel costs a query, so it runs once per this many appends to it.
_TRIM_EVERY = 32
# Past this many kept sessions (four times as many settings) the memory starts again.
_KEEP_MOST = 10_000


def _translating(method: Callable[..., T], writes: bool) -> Callable[..., T]:
    # A disk that filled up, a file removed or made read-only while running: the request
    # gets a 503 that names the problem, /healthz says degraded, and nothing is lost that
    # was answered 201. The next write that works clears the failure.
    @functools.wraps(method)
    def wrapper(self: SqliteStorage, *args: Any, **kwargs: Any) -> T:
        try:
            result = method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            self._failure = f"the history file {self._path} cannot be written ({exc})"
            raise StorageFailed(f"The chat cannot store messages: {self._failure}.") from None
        if writes:
            self._failure = None
        return result

    return wrapper


class SqliteStorage(ProcessState, Storage):
    """One SQLite connection, used by one process (gevent runs every greenlet on one thread)."""

    def __init__(self, path: Path, history: int) -> None:
        self._path = path
        self._failure: str | None = None
        self._db = open_file(path)
        self._history = history
        # Drawn when the file is created: a new file is a new life of the event log.
        self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)", (new_epoch(),)
        )
        self.epoch = self._db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
        self._appends: dict[str, int] = {}
        self._keyed = 0
        # What was read, as the file holds it (see the module): a session with its expiry,
        # a setting or its absence, a room that exists.
        self._sessions: dict[str, tuple[Session, float]] = {}
        self._settings: dict[str, str | None] = {}
        self._rooms: dict[str, Room] = {}
        # Name key -> the session holding it, until when, and until when the file says:
        # the file is written less often than holds are renewed (see _hold_in_memory).
        self._names: dict[str, tuple[str, float, float]] = {}
        ProcessState.__init__(self)
        self.ensure_general()

    @property
    def failure(self) -> str | None:
        return self._failure

    def append(self, draft: Draft) -> tuple[Event, bool]:
        # One process, and no greenlet switch inside these calls: atomic as a whole.
        now = time.time()
        if draft.key:
            prior = self.posted(draft.key)
            if prior is not None:
                return prior, False
        if draft.expects is not None and not self.still(draft.expects):
            raise Stale
        if draft.holds is not None and not self.claim_name(*draft.holds):
            raise NameTaken
        for index, (key, count, seconds) in enumerate(draft.counts):
            wait = self.rate_hit(key, RateLimit(count, seconds))
            if wait:
                raise RateExceeded(index, wait)
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
            if draft.key:
                self._db.execute(
                    "INSERT OR REPLACE INTO posted VALUES (?, ?, ?, ?, ?, ?)",
                    (draft.key, event_id, draft.channel, draft.kind, draft.body, now + KEY_TTL),
                )
        self._count_append(draft.channel, "events")
        for channel in draft.also:
            self._count_append(channel, "filed")
        if draft.key:
            self._keyed += 1
            if self._keyed >= _TRIM_EVERY:
                self._keyed = 0
                self._db.execute("DELETE FROM posted WHERE expires < ?", (now,))
        return Event.logged(event_id, draft.channel, draft.kind, draft.body, self.epoch), True

    def posted(self, key: str) -> Event | None:
        found = self._db.execute(
            "SELECT id, channel, kind, body FROM posted WHERE key = ? AND expires > ?",
            (key, time.time()),
        ).fetchone()
        return None if found is None else Event.logged(*found, self.epoch)

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
        return [Event.logged(*row, self.epoch) for row in reversed(rows)]

    def since(self, channels: Iterable[str], after: int) -> list[Event]:
        channels = list(channels)
        marks = ",".join("?" * len(channels))
        rows = self._db.execute(
            f"SELECT id, channel, kind, body FROM events WHERE channel IN ({marks}) AND id > ?"
            " UNION SELECT e.id, e.channel, e.kind, e.body FROM filed f JOIN events e USING (id)"
            f" WHERE f.channel IN ({marks}) AND f.id > ? ORDER BY 1",
            (*channels, after, *channels, after),
        ).fetchall()
        return [Event.logged(*row, self.epoch) for row in rows]

    def position(self) -> tuple[str, int]:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return self.epoch, row[0] if row else 0

    def create_room(self, room: Room) -> bool:
        self._rooms.pop(room.name, None)
        cur = self._db.execute(
            "INSERT OR IGNORE INTO rooms (name, created_by, creator, created_at)"
            " VALUES (?, ?, ?, ?)",
            (room.name, room.created_by, room.creator, time.time()),
        )
        return cur.rowcount == 1

    def _get_room(self, name: str) -> Room | None:
        found = self._rooms.get(name)
        if found is not None:
            return found
        row = self._db.execute(
            "SELECT name, created_by, creator FROM rooms WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return None  # not kept: any name can be asked for
        if len(self._rooms) >= _KEEP_MOST:
            self._rooms.clear()
        found = self._rooms[name] = Room(*row)
        return found

    def _list_rooms(self) -> list[Room]:
        rows = self._db.execute("SELECT name, created_by, creator FROM rooms")
        return [Room(*row) for row in rows]

    def delete_room(self, name: str) -> None:
        self._rooms.pop(name, None)
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM rooms WHERE name = ?", (name,))
            self._db.execute("DELETE FROM events WHERE channel = ?", (room_channel(name),))

    def claim_name(self, key: str, session: str, hold: float) -> bool:
        now = time.time()
        kept = self._names.get(key)
        if kept is not None and kept[1] >= now:
            if kept[0] != session:
                return False
            if self._hold_in_memory(key, kept, now, hold):
                return True
        if not self._claim_in_file(key, session, now, hold):
            return False
        self._keep_name(key, session, now + hold)
        return True

    def _claim_in_file(self, key: str, session: str, now: float, hold: float) -> bool:
        cur = self._db.execute(
            "INSERT INTO names (key, session, expires) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET session = excluded.session,"
            " expires = excluded.expires"
            " WHERE names.session = excluded.session OR names.expires < ?",
            (key, session, now + hold, now),
        )
        return cur.rowcount == 1

    def renew_name(self, key: str, session: str, hold: float) -> None:
        now = time.time()
        kept = self._names.get(key)
        if kept is not None and kept[0] == session and self._hold_in_memory(key, kept, now, hold):
            return
        if self._renew_in_file(key, session, now + hold):
            self._keep_name(key, session, now + hold)

    def _renew_in_file(self, key: str, session: str, until: float) -> bool:
        cur = self._db.execute(
            "UPDATE names SET expires = ? WHERE key = ? AND session = ?", (until, key, session)
        )
        return cur.rowcount == 1

    def _hold_in_memory(
        self, key: str, kept: tuple[str, float, float], now: float, hold: float
    ) -> bool:
        # A hold renewed by every post and every few seconds of every stream is written to
        # the file only once half of what the file says is left: a restart may free the
        # name up to half a hold early, nothing more. Here it is held for the full time.
        # A hold made shorter (a stream's countdown) is written at once: the file never
        # holds a name longer than this memory does.
        if not now + hold / 2 <= kept[2] <= now + hold:
            return False
        self._names[key] = (kept[0], now + hold, kept[2])
        return True

    def _keep_name(self, key: str, session: str, until: float) -> None:
        if len(self._names) >= _KEEP_MOST:
            # What this memory says outlasts the file: only what ended may go.
            now = time.time()
            self._names = {k: v for k, v in self._names.items() if v[1] >= now}
        self._names[key] = (session, until, until)

    def release_name(self, key: str, session: str) -> None:
        kept = self._names.get(key)
        if kept is not None and kept[0] == session:
            del self._names[key]
        self._db.execute("DELETE FROM names WHERE key = ? AND session = ?", (key, session))

    def start_session(self, session: Session, key: str, ttl: float) -> None:
        now = time.time()
        self._sessions.pop(session.id, None)
        with self._db:
            self._db.execute("BEGIN")
            # Throw-away logins must not grow the tables for ever: what ended goes.
            self._db.execute("DELETE FROM sessions WHERE expires < ?", (now,))
            self._db.execute("DELETE FROM names WHERE expires < ?", (now,))
            self._db.execute(
                "DELETE FROM holders WHERE session NOT IN (SELECT id FROM sessions)"
            )
            self._db.execute(
                "INSERT OR REPLACE INTO sessions (id, name, host, started, address, expires)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (session.id, session.name, int(session.host), session.started,
                 session.address, now + ttl),
            )
            self._db.execute(
                "INSERT INTO holders (key, name, session) VALUES (?, ?, ?) ON CONFLICT (key)"
                " DO UPDATE SET name = excluded.name, session = excluded.session",
                (key, session.name, session.id),
            )

    def get_session(self, session_id: str) -> Session | None:
        now = time.time()
        kept = self._sessions.get(session_id)
        if kept is not None:
            return kept[0] if kept[1] >= now else None
        row = self._db.execute(
            "SELECT id, name, host, started, address, expires FROM sessions"
            " WHERE id = ? AND expires >= ?",
            (session_id, now),
        ).fetchone()
        if row is None:
            return None  # not kept: anyone can send any id
        if len(self._sessions) >= _KEEP_MOST:
            self._sessions.clear()
        found = Session(row[0], row[1], bool(row[2]), row[3], row[4])
        self._sessions[session_id] = (found, row[5])
        return found

    def make_host(self, session_id: str) -> bool:
        self._sessions.pop(session_id, None)
        cur = self._db.execute(
            "UPDATE sessions SET host = 1 WHERE id = ? AND expires >= ?", (session_id, time.time())
        )
        return cur.rowcount == 1

    def delete_event(self, channel: str, event_id: int) -> Event | None:
        row = self._db.execute(
            "SELECT id, channel, kind, body FROM events WHERE channel = ? AND id = ?",
            (channel, event_id),
        ).fetchone()
        if row is None:
            return None
        self._db.execute("DELETE FROM events WHERE id = ?", (event_id,))
        return Event.logged(*row, self.epoch)

    def clear_channel(self, channel: str) -> None:
        self._db.execute("DELETE FROM events WHERE channel = ?", (channel,))

    def get_settings(self, keys: list[str]) -> list[str | None]:
        kept = self._settings
        unknown = [key for key in keys if key not in kept]
        if not unknown:
            return [kept[key] for key in keys]
        marks = ",".join("?" * len(unknown))
        read: dict[str, str | None] = dict.fromkeys(unknown)
        read.update(self._db.execute(
            f"SELECT key, value FROM settings WHERE key IN ({marks})", unknown
        ).fetchall())
        values = [read[key] if key in read else kept[key] for key in keys]
        if len(kept) + len(read) > 4 * _KEEP_MOST:
            kept.clear()
        kept.update(read)
        return values

    def set_setting(self, key: str, value: str | None) -> None:
        self._settings.pop(key, None)
        if value is None:
            self._db.execute("DELETE FROM settings WHERE key = ?", (key,))
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value)
            )

    def settings_with_prefix(self, prefix: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT key, value FROM settings WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
        )
        return dict(rows.fetchall())

    def end_session(self, session_id: str) -> Session | None:
        found = self.get_session(session_id)
        self._sessions.pop(session_id, None)
        self._names = {k: v for k, v in self._names.items() if v[0] != session_id}
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
            self._db.execute("DELETE FROM names WHERE session = ?", (session_id,))
            self._db.execute("DELETE FROM holders WHERE session = ?", (session_id,))
        return found

    def find_user(self, key: str) -> tuple[str, str] | None:
        row = self._db.execute(
            "SELECT name, session FROM holders WHERE key = ?", (key,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def close(self) -> None:
        self._db.close()


# Every method that touches the file answers a failing disk with StorageFailed; only a
# write that works again clears the failure (reads go on working on a full disk).
# (A name hold renewed in memory only writes nothing: it must not clear a failure.)
for _name in ("append", "create_room", "delete_room", "_claim_in_file", "_renew_in_file",
              "release_name", "start_session", "end_session", "make_host", "delete_event",
              "clear_channel", "set_setting"):
    setattr(SqliteStorage, _name, _translating(getattr(SqliteStorage, _name), writes=True))
for _name in ("history", "since", "position", "_get_room", "_list_rooms", "find_user",
              "get_session", "get_settings", "settings_with_prefix"):
    setattr(SqliteStorage, _name, _translating(getattr(SqliteStorage, _name), writes=False))
