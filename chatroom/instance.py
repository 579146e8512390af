"""One chat per data folder: a second double-click finds the first and says where it is.

The running server holds an exclusive lock on ``chatroom.lock`` in its data folder and
writes its address there. The operating system releases the lock when the process ends,
however it ends (a crash, a kill), so a lock left behind by a dead process is simply taken
over by the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import IO

LOCK_NAME = "chatroom.lock"


class Instance:
    """The lock of the chat that owns a data folder, held for as long as this object lives."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    def record(self, url: str, host_link: str) -> None:
        """Write where this chat is, for a second start to find (readable by us only)."""
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps({"url": url, "host_link": host_link, "pid": os.getpid()}))
        self._handle.flush()

    def release(self) -> None:
        """Give the folder up (the server stopped)."""
        with contextlib.suppress(OSError):
            self._handle.seek(0)
            self._handle.truncate()
        self._handle.close()


def claim(folder: Path) -> Instance | None:
    """Take the folder's lock; None if a running chat holds it."""
    path = folder / LOCK_NAME
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    handle = open(path, "r+", encoding="utf-8")  # noqa: SIM115 - held while the chat runs
    try:
        _lock(handle)
    except OSError:
        handle.close()
        return None
    return Instance(handle)


def running_at(folder: Path) -> tuple[str, str] | None:
    """Return the address and host link the chat holding ``folder`` recorded, if any."""
    try:
        found = json.loads((folder / LOCK_NAME).read_text(encoding="utf-8"))
        return found["url"], found["host_link"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _lock(handle: IO[str]) -> None:
    if os.name == "nt":
        import msvcrt

        # One byte far past the address: a second start can still read the address.
        handle.seek(1 << 20)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        handle.seek(0)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
