"""Rooms and their messages: list, create, close, read history, post."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from .. import moderation, validation
from ..chat import Chat
from ..current import get_chat
from ..errors import ApiError
from ..events import ROOMS_CHANNEL, Draft, now_ms, room_channel
from ..guards import check_room_rate
from ..identity import User, require_user
from ..posting import decided_again_when_stale, post_as, require_poster
from ..storage import GENERAL, Room

bp = Blueprint("rooms", __name__, url_prefix="/api/rooms")

HISTORY_DEFAULT = 100
# How many older messages the page asks for as the reader scrolls up.
OLDER_PAGE = 50
HISTORY_MAX = 1000


def existing_room(chat: Chat, raw: str) -> Room:
    """Return the room named ``raw``, or answer 400 (bad name) or 404 (no such room)."""
    name = validation.room_name(raw)
    room = chat.storage.get_room(name)
    if room is None:
        raise ApiError(404, "unknown_room", f"There is no room called {name!r}.")
    return room


def require_viewer(chat: Chat) -> None:
    """Answer 401 on a private server to a visitor who has not logged in."""
    if chat.config.private:
        require_user()


def _room_json(
    room: Room, online: int = 0, rules: moderation.RoomRules | None = None
) -> dict[str, Any]:
    rules = rules or moderation.RoomRules()
    return {"name": room.name, "online": online, "created_by": room.created_by,
            "read_only": rules.read_only, "slow_mode": rules.slow_mode}


@bp.get("")
def list_rooms() -> Response:
    """Every room with its online count, ``general`` first."""
    chat = get_chat()
    require_viewer(chat)
    storage = chat.storage
    rooms = storage.list_rooms()
    online = storage.online_counts(room.name for room in rooms)
    rules = moderation.rules_of(storage, [room.name for room in rooms])
    return jsonify(rooms=[_room_json(room, online[room.name], rules[room.name]) for room in rooms])


@bp.get("/<room>/presence")
def presence(room: str) -> Response:
    """Who is online in the room."""
    chat = get_chat()
    require_viewer(chat)
    found = existing_room(chat, room)
    return jsonify(room=found.name, online=chat.storage.online(found.name))


@bp.post("")
def create_room() -> tuple[Response, int]:
    """Create a room; everyone is told with ``room_created``."""
    chat = get_chat()
    user = require_user()
    name = validation.room_name(validation.body_field("name"))
    chat.names.confirm(user)
    if chat.storage.get_room(name) is not None:
        raise ApiError(409, "room_exists", f"A room called {name!r} exists already.")
    if chat.storage.count_rooms() >= chat.config.max_rooms:
        raise ApiError(
            403, "too_many_rooms",
            f"This chat has {chat.config.max_rooms} rooms, as many as it holds."
            " Ask for one to be closed first.",
        )
    check_room_rate(chat.storage, chat.config, user.session)
    room = Room(name, user.name, user.session)
    if not chat.storage.create_room(room):
        raise ApiError(409, "room_exists", f"A room called {name!r} exists already.")
    chat.publish(Draft.of(ROOMS_CHANNEL, "room_created", room=name, by=user.name))
    return jsonify(_room_json(room)), 201


@bp.delete("/<room>")
def close_room(room: str) -> Response:
    """Close a room (its creator only): listeners get ``room_closed`` and move to general."""
    chat = get_chat()
    user = require_user()
    found = existing_room(chat, room)
    if found.name == GENERAL:
        raise ApiError(403, "cannot_close_general", "The general room cannot be closed.")
    if found.creator != user.session and not user.host:
        raise ApiError(
            403, "not_room_creator", f"Only {found.created_by!r}, who created it, can close it."
        )
    chat.names.confirm(user)
    chat.storage.delete_room(found.name)
    moderation.forget_room(chat.storage, found.name)
    chat.publish(Draft.of(ROOMS_CHANNEL, "room_closed", room=found.name, by=user.name))
    return jsonify(closed=found.name)


@bp.get("/<room>/messages")
def history(room: str) -> Response:
    """The room's messages, oldest first: the newest ``limit``, or those before ``before``."""
    chat = get_chat()
    require_viewer(chat)
    found = existing_room(chat, room)
    return history_response(chat, room_channel(found.name))


def history_response(chat: Chat, channel: str) -> Response:
    """Answer ``{"messages": [...]}`` for a channel, honouring ``limit`` and ``before``."""
    limit = validation.int_arg("limit", HISTORY_DEFAULT, 1, HISTORY_MAX)
    before = validation.int_arg("before", None, 1, 2**63 - 1)
    events = chat.storage.history(channel, limit, before)
    # The stored JSON is sent as it is, exactly what the stream sent.
    return Response(
        '{"messages":[' + ",".join(e.data for e in events) + "]}",
        mimetype="application/json",
    )


def _name_or_empty(raw: str) -> str:
    # A bad name is answered 400 by existing_room, after the 401 a stranger gets first.
    try:
        return validation.room_name(raw)
    except ApiError:
        return ""


@bp.post("/<room>/messages")
@decided_again_when_stale
def post_message(room: str) -> Response:
    """Post a message; 201 with it, as every listener receives it."""
    chat = get_chat()
    name = _name_or_empty(room)
    decision = require_poster(
        lambda sid: moderation.post_setting_keys(sid, name), name or GENERAL
    )
    user = decision.user
    # A bad name is a 400 and an unknown room a 404, answered by existing_room.
    found = decision.room if name and decision.room else existing_room(chat, room)
    text = validation.message_text(validation.body_field("text"))
    decision.check(lambda rules: moderation.check_post(user, found.name, rules))
    fields = {"room": found.name, "user": user.name, "text": text, "ts": now_ms()}
    if user.host:
        fields["host"] = True  # a mark no one else can get: the host's messages
    mentioned = validation.mentions(text)
    if mentioned:
        fields["mentions"] = mentioned  # name keys, compared as logins compare names
    return post_as(chat, decision, Draft.of(room_channel(found.name), "message", **fields))


@bp.delete("/<room>/messages/<int:message_id>")
def delete_message(room: str, message_id: int) -> Response:
    """Delete a message (its author or the host): gone from history and every page."""
    chat = get_chat()
    user = require_user()
    found = existing_room(chat, room)
    channel = room_channel(found.name)
    target = None
    if message_id < 2**53:  # no id is larger
        target = next(iter(chat.storage.history(channel, 1, message_id + 1)), None)
    if target is None or target.id != message_id or target.kind != "message":
        raise ApiError(
            404, "unknown_message", f"There is no message {message_id} in #{found.name}."
        )
    if not user.host and not _authored(chat, user, target.payload()):
        raise ApiError(403, "not_author", "Only its author or the host can delete a message.")
    chat.storage.delete_event(channel, message_id)
    # On the channel every stream follows (as room_closed): history keeps only messages.
    event = chat.publish(
        Draft.of(ROOMS_CHANNEL, "message_deleted", room=found.name, id=message_id, by=user.name)
    )
    return Response(event.data, mimetype="application/json")


def _authored(chat: Chat, user: User, message: dict[str, Any]) -> bool:
    # A name belongs to one session at a time, and a session that lost its name ends:
    # a message under this name posted since this session began is this session's.
    found = chat.storage.get_session(user.session)
    return found is not None and message["user"] == user.name and message["ts"] >= found.started
