"""The SQLite file itself: its tables, and opening it safely (or saying why it cannot be)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..config import DataDirError
from ..i18n import _

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
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    host INTEGER NOT NULL DEFAULT 0,
    started INTEGER NOT NULL DEFAULT 0,
    address TEXT NOT NULL DEFAULT '',
    expires REAL NOT NULL
);
-- Room settings, mutes, bans and the chat's own settings: small values by key.
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- The latest login under each name key: private messages to that name reach it.
CREATE TABLE IF NOT EXISTS holders (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    session TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS names (
    key TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS posted (
    key TEXT PRIMARY KEY,
    id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


def open_file(path: Path) -> sqlite3.Connection:
    """Open (creating it if need be, readable by this user only) the history file."""
    try:
        # Created readable by this user only: it holds private messages. SQLite gives its
        # -wal and -shm files the same mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL with synchronous=NORMAL: a committed message survives the process being
        # killed, at a fraction of the cost of a full fsync per message.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(_SCHEMA)
        if "creator" not in {row[1] for row in db.execute("PRAGMA table_info(rooms)")}:
            db.execute("ALTER TABLE rooms ADD COLUMN creator TEXT")  # files made before it
    except PermissionError:
        raise DataDirError(_(
            "Cannot open the history file {path}: permission denied. Make the folder"
            " writable for this user, or choose another with --data-dir."
        ).format(path=path)) from None
    except sqlite3.DatabaseError as exc:
        raise DataDirError(_(
            "The history file {path} cannot be used ({reason}). Move it out of the way"
            " (the chat then starts with an empty history) or restore it from a backup."
        ).format(path=path, reason=exc)) from None
    except OSError as exc:
        raise DataDirError(_(
            "Cannot open the history file {path} ({reason}). Choose another folder"
            " with --data-dir."
        ).format(path=path, reason=exc.strerror)) from None
    return db
