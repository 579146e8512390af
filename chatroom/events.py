"""Events: what is published, stored in history and sent on streams.

An event lives in three forms. A *draft* is what a view publishes: a channel, a kind and
a JSON body without an id. The broker gives it the next id and stores it as a *record*,
one line of text (``"<epoch>-<id>\\t<channel>\\t<kind>\\t<body>"``), which is what goes
through Redis and into storage. Each process turns a record into an :class:`Event` once,
and the event's SSE frame is encoded once and shared by every listener.

Ids and epochs: the JSON ``id`` is a small integer, given by the store in increasing order.
The SSE ``id:`` is the *position* ``<epoch>-<id>``: the epoch names the store's life (it is
drawn when the store is created or found empty), so a ``Last-Event-ID`` from before the
store was emptied is recognised as such and never compared with the new life's ids.

Channels: ``room:<name>`` carries a room's messages, ``rooms`` carries ``room_created``
and ``room_closed`` (every stream follows it), ``presence:<name>`` carries a room's
``join`` and ``leave`` (never stored, no id), ``dm:<a>|<b>`` carries the private messages
between two sessions (``<a>`` and ``<b>`` are session ids: a conversation belongs to the
two logins that had it, not to their names). A private message is also filed under
``user:<a>`` and ``user:<b>``, so a session's stream can replay every conversation.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from . import sse

ROOMS_CHANNEL = "rooms"
# Between processes only (no stream follows it): a session ended, its streams end too.
SESSIONS_CHANNEL = "sessions"


def room_channel(room: str) -> str:
    """Return the channel that carries a room's messages."""
    return f"room:{room}"


def presence_channel(room: str) -> str:
    """Return the channel that carries a room's join and leave events."""
    return f"presence:{room}"


# Names cannot hold control characters, so this one separates two names unambiguously.
_PAIR = "\x1f"


def dm_channel(session_a: str, session_b: str) -> str:
    """Return the channel of the conversation between two sessions."""
    first, second = sorted((session_a, session_b))
    return f"dm:{first}{_PAIR}{second}"


def dm_parties(channel: str) -> tuple[str, str]:
    """Return the two sessions of a ``dm:`` channel."""
    first, _, second = channel[3:].partition(_PAIR)
    return first, second


def user_channel(session: str) -> str:
    """Return the channel under which a session's private messages are filed."""
    return f"user:{session}"


_POSITION = re.compile(r"(?:([a-z0-9]{1,16})-)?([0-9]{1,16})")


def new_epoch() -> str:
    """Return a fresh epoch: eight random characters of ``a-z0-9``."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))


@dataclass(frozen=True)
class Position:
    """Where a client is in the event log: a ``Last-Event-ID`` it sent back.

    ``epoch`` is None for a bare number, which is read as an id of the store's current life.
    """

    epoch: str | None
    id: int

    @classmethod
    def parse(cls, raw: str) -> Position | None:
        """Read ``<epoch>-<id>`` or ``<id>``; None if it is neither."""
        match = _POSITION.fullmatch(raw.strip())
        if match is None:
            return None
        return cls(match[1], int(match[2]))


def now_ms() -> int:
    """Return the server's clock as Unix time in milliseconds, the unit of ``ts``."""
    return time.time_ns() // 1_000_000


def dumps(value: Any) -> str:
    """Serialise compactly and keep non-ASCII text as it is (smaller frames, readable wire)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Expected:
    """What a post was decided on, which its append checks still holds (see Storage.append).

    The poster's session (its id, name and whether it is the host's), each host setting
    the decision read (None: not set), and the room posted to when it is not ``general``.
    """

    session: str
    name: str
    host: bool
    settings: tuple[tuple[str, str | None], ...] = ()
    room: str = ""


@dataclass(frozen=True)
class Draft:
    """An event before it has an id. ``body`` is the JSON object without its opening brace."""

    channel: str
    kind: str
    body: str
    # Further channels the event is filed under, for replay; it is published on ``channel``.
    also: tuple[str, ...] = ()
    # Checked in the same atomic step as the append (see Storage.append): an idempotency
    # key (see :mod:`.idempotency`), the (name key, session, seconds) of the name the
    # poster must hold, the (key, count, seconds) of each rate window it counts in, and
    # what the post was decided on.
    key: str = ""
    holds: tuple[str, str, float] | None = None
    counts: tuple[tuple[str, int, float], ...] = ()
    expects: Expected | None = None

    @classmethod
    def of(cls, channel: str, kind: str, also: tuple[str, ...] = (), **fields: Any) -> Draft:
        """Build a draft from the fields its data will carry after the id."""
        return cls(channel, kind, dumps(fields)[1:], also)

    def guarded(
        self, key: str = "", holds: tuple[str, str, float] | None = None,
        counts: tuple[tuple[str, int, float], ...] = (), expects: Expected | None = None,
    ) -> Draft:
        """Return this draft with the conditions its append checks (see the fields)."""
        return replace(self, key=key, holds=holds, counts=counts, expects=expects)

    def tail(self) -> str:
        """Return the record without its id: what the broker appends to the id it assigns."""
        return f"\t{self.channel}\t{self.kind}\t{self.body}"


# Events whose data has an "id" of its own (the deleted message's): theirs is in the
# frame's id: only.
_OWN_ID = frozenset({"message_deleted"})


class Event:
    """One event with its frame encoded once, ready to be written to any number of streams."""

    __slots__ = ("channel", "data", "epoch", "frame", "id", "kind")

    def __init__(
        self, id: int | None, channel: str, kind: str, data: str, epoch: str | None = None
    ) -> None:
        self.id = id
        self.epoch = epoch
        self.channel = channel
        self.kind = kind
        self.data = data
        position = None if id is None else (f"{epoch}-{id}" if epoch else id)
        self.frame = sse.encode(data, event=kind, id=position)

    @classmethod
    def from_record(cls, record: str | bytes) -> Event:
        """Parse a stored or published record; raise ValueError if it is not one."""
        if isinstance(record, bytes):
            record = record.decode("utf-8")
        id_text, channel, kind, body = record.split("\t", 3)
        if not id_text:
            return cls(None, channel, kind, "{" + body)
        # Records written before epochs existed carry a bare id.
        epoch, _, number = id_text.rpartition("-")
        return cls.logged(int(number), channel, kind, body, epoch or None)

    @classmethod
    def logged(cls, id: int, channel: str, kind: str, body: str, epoch: str | None) -> Event:
        """Build a stored event from its id, its draft's body and the store's epoch."""
        if kind in _OWN_ID:
            return cls(id, channel, kind, "{" + body, epoch)
        return cls(id, channel, kind, f'{{"id":{id},{body}', epoch)

    @classmethod
    def ephemeral(cls, channel: str, kind: str, **fields: Any) -> Event:
        """Build an event that is sent live only: no id, never stored or replayed."""
        return cls(None, channel, kind, dumps(fields))

    def to_record(self) -> str:
        """Return the one-line text form used by Redis and storage (ephemeral events too)."""
        if self.id is None:
            return f"\t{self.channel}\t{self.kind}\t{self.data[1:]}"
        position = f"{self.epoch}-{self.id}" if self.epoch else str(self.id)
        body = self.data[1:] if self.kind in _OWN_ID else self.data.split(",", 1)[1]
        return f"{position}\t{self.channel}\t{self.kind}\t{body}"

    def payload(self) -> dict[str, Any]:
        """Return the event's data as a dict (for API answers, not the hot path)."""
        return json.loads(self.data)

    def __repr__(self) -> str:
        return f"Event({self.id!r}, {self.channel!r}, {self.kind!r})"
