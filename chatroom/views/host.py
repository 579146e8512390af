"""The host's powers: the host link, and what a teacher needs to run a lesson.

Every action is a stored event (replayed to a page that was away) and is refused to
anyone but the host with 403 ``host_only``.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timezone

from flask import Blueprint, Response, jsonify, redirect, request, session

from .. import export, moderation, validation
from ..chat import Chat
from ..current import get_chat
from ..errors import ApiError
from ..events import ROOMS_CHANNEL, Draft, now_ms, room_channel, user_channel
from ..guards import LOGINS_PER_ADDRESS, client_address, limit
from ..identity import User, require_user, session_user
from ..storage import Session
from .rooms import existing_room

bp = Blueprint("host", __name__)


@bp.get("/host")
def host_link() -> Response:
    """Make this browser's session the host's, then go to the chat without the token."""
    chat = get_chat()
    limit(chat.storage, LOGINS_PER_ADDRESS, "host", "tries of the host link", per_address=True)
    given = request.args.get("token", "")
    expected = chat.config.host_token or ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(403, "wrong_host_token", "This host link is not (or no longer) valid.")
    user = session_user()
    if user is not None:
        chat.storage.make_host(user.session)
    else:
        # Not logged in yet: the name this browser picks next is the host's.
        session["host_pending"] = True
    return redirect("/", code=303)


def _host(chat: Chat) -> User:
    user = require_user()
    moderation.require_host(user)
    return user


def _target(chat: Chat, raw: str) -> tuple[str, str, Session | None]:
    name = validation.display_name(raw)
    found = chat.storage.find_user(validation.name_key(name))
    if found is None:
        raise ApiError(404, "unknown_user", f"Nobody called {name!r} is in this chat.")
    return found[0], found[1], chat.storage.get_session(found[1])


@bp.post("/api/rooms/<room>/clear")
def clear_room(room: str) -> Response:
    """Empty a room's history; every page empties it too (``room_cleared``)."""
    chat = get_chat()
    host = _host(chat)
    found = existing_room(chat, room)
    _clear(chat, found.name, host)
    return jsonify(cleared=found.name)


def _clear(chat: Chat, room: str, host: User) -> None:
    chat.storage.clear_channel(room_channel(room))
    chat.publish(Draft.of(ROOMS_CHANNEL, "room_cleared", room=room, by=host.name))


@bp.patch("/api/rooms/<room>")
def update_room(room: str) -> Response:
    """Make a room read-only or set its slow mode (``room_updated``)."""
    chat = get_chat()
    host = _host(chat)
    found = existing_room(chat, room)
    body = validation.json_object()
    if body is None or not ({"read_only", "slow_mode"} & set(body)):
        raise ApiError(400, "invalid_settings",
                       'Send JSON like {"read_only": true} or {"slow_mode": 30}.')
    rules = moderation.room_rules(chat.storage, found.name)
    read_only = body.get("read_only", rules.read_only)
    slow = body.get("slow_mode", rules.slow_mode)
    if not isinstance(read_only, bool):
        raise ApiError(400, "invalid_settings", "read_only is true or false.")
    if isinstance(slow, bool) or not isinstance(slow, int) or not 0 <= slow <= 3600:
        raise ApiError(400, "invalid_settings", "slow_mode is whole seconds from 0 to 3600.")
    moderation.set_room_rules(chat.storage, found.name, moderation.RoomRules(read_only, slow))
    event = chat.publish(Draft.of(
        ROOMS_CHANNEL, "room_updated",
        room=found.name, read_only=read_only, slow_mode=slow, by=host.name,
    ))
    return Response(event.data, mimetype="application/json")


@bp.get("/api/rooms/<room>/export")
def export_room(room: str) -> Response:
    """The room's retained history as a download: txt, html, json or csv."""
    chat = get_chat()
    _host(chat)
    found = existing_room(chat, room)
    kind = request.args.get("format", "txt")
    if kind not in export.FORMATS:
        raise ApiError(400, "invalid_format", "format is one of txt, html, json, csv.")
    events = chat.storage.history(room_channel(found.name), chat.config.history)
    messages = [e.payload() for e in events if e.kind == "message"]
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    filename = f"{found.name}-{day}.{kind}"
    return Response(
        export.render(kind, found.name, messages), mimetype=export.FORMATS[kind],
        headers={"Content-Disposition": _attachment(filename)},
    )


def _attachment(filename: str) -> str:
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


@bp.post("/api/users/<name>/mute")
def mute(name: str) -> Response:
    """Mute a user for ``minutes`` (none: until unmuted); they see why (``user_muted``)."""
    chat = get_chat()
    host = _host(chat)
    who, sid, _ = _target(chat, name)
    body = validation.json_object()
    if body is None and request.content_length:
        # A body that is not a JSON object must not read as "mute until unmuted".
        raise ApiError(400, "invalid_json", 'Send JSON like {"minutes": 10}, or no body.')
    minutes = body.get("minutes") if body is not None else None
    number = isinstance(minutes, int | float) and not isinstance(minutes, bool)
    if minutes is not None and not (number and 0 < minutes <= 10080):
        raise ApiError(400, "invalid_minutes", "minutes is a number from 1 to 10080 (a week).")
    until = None if minutes is None else now_ms() + int(minutes * 60_000)
    moderation.mute(chat.storage, sid, who, until)
    event = chat.publish(Draft.of(ROOMS_CHANNEL, "user_muted", user=who, until=until, by=host.name))
    return Response(event.data, mimetype="application/json")


@bp.delete("/api/users/<name>/mute")
def unmute(name: str) -> Response:
    """Lift a user's mute (``user_unmuted``)."""
    chat = get_chat()
    host = _host(chat)
    who, sid, _ = _target(chat, name)
    moderation.unmute(chat.storage, sid)
    event = chat.publish(
        Draft.of(ROOMS_CHANNEL, "user_unmuted", user=who, until=None, by=host.name)
    )
    return Response(event.data, mimetype="application/json")


@bp.post("/api/users/<name>/kick")
def kick(name: str) -> Response:
    """End a user's session and streams; the name is free (``kicked``)."""
    chat = get_chat()
    host = _host(chat)
    who, sid, _ = _target(chat, name)
    _kick(chat, host, who, sid, banned=False)
    return jsonify(kicked=who)


@bp.post("/api/users/<name>/ban")
def ban(name: str) -> Response:
    """Kick a user and refuse their client address until the ban is lifted."""
    chat = get_chat()
    host = _host(chat)
    who, sid, found = _target(chat, name)
    if found is None or not found.address:
        raise ApiError(404, "unknown_user", f"{who!r} is not logged in: there is no one to ban.")
    if found.id == host.session or found.address == client_address():
        # Banning one's own address would lock the host out with the student.
        raise ApiError(400, "ban_self", "That user shares this device's address: kick instead.")
    moderation.ban(chat.storage, found.address, who, host.name)
    _kick(chat, host, who, sid, banned=True)
    return jsonify(banned=who, address=found.address)


def _kick(chat: Chat, host: User, who: str, sid: str, banned: bool) -> None:
    if sid == host.session:
        raise ApiError(400, "kick_self", "The host cannot kick themselves.")
    chat.publish(Draft.of(user_channel(sid), "kicked", user=who, by=host.name, banned=banned))
    chat.sessions.end(sid)


@bp.get("/api/bans")
def list_bans() -> Response:
    """Every banned client address, oldest first."""
    chat = get_chat()
    _host(chat)
    return jsonify(bans=moderation.bans(chat.storage))


@bp.delete("/api/bans/<address>")
def lift_ban(address: str) -> Response:
    """Let a banned address in again."""
    chat = get_chat()
    _host(chat)
    if address not in {entry["address"] for entry in moderation.bans(chat.storage)}:
        raise ApiError(404, "unknown_ban", f"{address!r} is not banned.")
    chat.storage.set_setting(moderation.BAN + address, None)
    return jsonify(lifted=address)


@bp.get("/api/settings")
def settings() -> Response:
    """The chat's settings: whether private messages are on."""
    return jsonify(private_messages=moderation.private_messages_on(get_chat().storage))


@bp.patch("/api/settings")
def update_settings() -> Response:
    """Turn private messages off or on for everyone (``settings``)."""
    chat = get_chat()
    host = _host(chat)
    body = validation.json_object()
    on = body.get("private_messages") if body is not None else None
    if not isinstance(on, bool):
        raise ApiError(400, "invalid_settings", 'Send JSON like {"private_messages": false}.')
    moderation.set_private_messages(chat.storage, on)
    event = chat.publish(Draft.of(ROOMS_CHANNEL, "settings", private_messages=on, by=host.name))
    return Response(event.data, mimetype="application/json")


@bp.post("/api/wipe")
def wipe() -> Response:
    """Delete every room's history (the rooms stay): ``room_cleared`` for each."""
    chat = get_chat()
    host = _host(chat)
    rooms = [room.name for room in chat.storage.list_rooms()]
    for room in rooms:
        _clear(chat, room, host)
    return jsonify(cleared=rooms)
