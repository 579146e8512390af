"""``GET /stream``: the Server-Sent Events stream, with exact replay after ``Last-Event-ID``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request, session

from .. import sse, validation
from ..chat import Chat
from ..current import get_chat
from ..errors import ApiError
from ..events import ROOMS_CHANNEL, Position, presence_channel, room_channel, user_channel
from ..handover import StreamHandedOver, request_socket, response_chunked
from ..identity import User, require_user, session_user
from ..listener import Listener
from ..moderation import check_not_banned
from ..storage import GENERAL, Unavailable

bp = Blueprint("stream", __name__)

RETRY_MS = 2000
# Replay is written in slices so one huge catch-up is not one huge string in memory.
_REPLAY_SLICE = 256
_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


@bp.get("/stream")
def stream() -> Response:
    """Follow rooms (``general`` if none is named), room events and the user's private messages."""
    chat = get_chat()
    last_id = _last_event_id()
    if request.method == "HEAD":
        return Response(mimetype="text/event-stream", headers=_HEADERS)
    try:
        check_not_banned(chat.storage)
        user = require_user() if chat.config.private else session_user()
        if user is None and "sid" in session:
            # A cookie of a session that ended: the page must learn it, not listen on.
            raise ApiError(401, "session_ended", "This session has ended: log in again.")
        rooms = _rooms(chat, resuming=last_id is not None)
    except Unavailable:
        # A 503 would make EventSource give up for good; this makes it try again soon.
        body = sse.encode(retry=RETRY_MS) + sse.comment("the chat is unavailable, retrying")
        # The stream ends here: the connection too, so that every client sees the end.
        return Response(
            body, mimetype="text/event-stream", headers={**_HEADERS, "Connection": "close"}
        )
    return Response(
        _frames(chat, rooms, user, last_id, request.environ),
        mimetype="text/event-stream", headers=_HEADERS,
    )


def _last_event_id() -> Position | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if raw is None or raw.strip() == "":
        return None
    position = Position.parse(raw)
    if position is None:
        raise ApiError(
            400, "invalid_last_event_id",
            "Last-Event-ID must be an id this server sent, like k3x9q2ab-42.",
        )
    return position


def _rooms(chat: Chat, resuming: bool) -> list[str]:
    names = list(dict.fromkeys(validation.room_name(r) for r in request.args.getlist("room")))
    if not names:
        return [GENERAL]
    most = chat.config.max_rooms
    if len(names) > most:
        raise ApiError(400, "too_many_rooms", f"One stream can follow at most {most} rooms.")
    found = [name for name in names if chat.storage.get_room(name) is not None]
    missing = sorted(set(names) - set(found))
    if missing and not resuming:
        raise ApiError(404, "unknown_room", f"There is no room called {missing[0]!r}.")
    # A reconnect may name rooms closed while it was away: it follows the others (general
    # if none is left) and learns of the closing from the replayed room_closed.
    return found or [GENERAL]


def _frames(
    chat: Chat, rooms: list[str], user: User | None, last_id: Position | None,
    environ: dict[str, Any],
) -> Iterator[bytes]:
    # Runs in the greenlet that serves the request, which the listener records so that
    # a full buffer can end a write that is stuck on a client that stopped reading.
    logged = {room_channel(room) for room in rooms} | {ROOMS_CHANNEL}
    if user is not None:
        logged.add(user_channel(user.session))
    channels = logged | {presence_channel(room) for room in rooms}
    listener = Listener(channels, user, chat.config.client_buffer)
    chat.fanout.add(listener)
    online = False

    def cleanup() -> None:
        chat.fanout.remove(listener)
        if online:
            chat.presence.disconnected(rooms, user.name)
            # During an outage the name's hold expires by itself.
            with contextlib.suppress(Unavailable):
                chat.names.stream_closed(user)

    handed_over = False
    try:
        if user is not None:
            chat.names.stream_opened(user)
            chat.presence.connected(rooms, user.name)
            online = True
        # pywsgi sends the headers with the first non-empty chunk: it goes out at once.
        # The retry hint rides on the first event: a frame of its own would be an empty
        # event to some clients (httpx-sse).
        first, *others = (chat.presence.snapshot(room) for room in rooms)
        yield sse.encode(first.data, event=first.kind, retry=RETRY_MS) + b"".join(
            snapshot.frame for snapshot in others
        )
        if last_id is not None:
            listener.replayed_up_to((yield from _replay(chat, logged, last_id)))
            batch = listener.take(0)
            if batch is None:
                return
            if batch:
                yield b"".join(frame for _, frame in batch)
            if listener.closed:
                return
        sock = request_socket(environ)
        if sock is None:
            # A server that does not tell the socket: every write goes through it.
            while True:
                batch = listener.take(chat.config.keepalive)
                if batch is None:
                    return
                yield b"".join(frame for _, frame in batch) if batch else sse.KEEPALIVE
        # The headers and first frames went out through the server: the connection is
        # handed over (see chatroom.handover), and the stream goes on, costing no
        # greenlet while it waits.
        connection = environ.get("chatroom.connection")
        release = connection.keep() if connection is not None else None

        def end() -> None:
            cleanup()
            if release is not None:
                release()

        chat.fanout.take_over(listener, sock.dup(), response_chunked(environ), on_end=end)
        handed_over = True
        raise StreamHandedOver
    except Unavailable:
        # Redis went away while this stream started: end it, the browser retries.
        yield sse.comment("the chat is unavailable, retrying")
    finally:
        if not handed_over:
            cleanup()


def _replay(chat: Chat, channels: set[str], resume: Position) -> Iterator[bytes]:
    """Send every retained event after ``resume``; return the highest id sent.

    The client's id only chooses what is read, never what the store does: an id of
    another epoch (the store was emptied since) replays all that is retained, and an id
    this epoch never reached has nothing newer to replay.
    """
    storage = chat.storage
    epoch, newest = storage.position()
    after = 0 if resume.epoch not in (None, epoch) else min(resume.id, newest)
    events = storage.since(channels, after) if after < newest else []
    for start in range(0, len(events), _REPLAY_SLICE):
        yield b"".join(e.frame for e in events[start : start + _REPLAY_SLICE])
    return events[-1].id if events else after
