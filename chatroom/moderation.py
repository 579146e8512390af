"""The host's rules as every process enforces them: read-only rooms, slow mode, mutes,
bans, private messages off.

They are stored as settings, so they survive a restart and every process sharing a Redis
reads the same; one read per post gathers every rule that applies to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .config import RateLimit
from .errors import ApiError
from .events import now_ms
from .guards import Window, client_address, too_soon
from .identity import User
from .storage import Storage

_ROOM = "room:"  # room:<name> -> {"read_only", "slow_mode"}
_MUTE = "mute:"  # mute:<session> -> {"user", "until"} (until: ms, or null)
BAN = "ban:"  # ban:<address> -> {"user", "by", "at"}
_PRIVATE_MESSAGES = "chat:private_messages"  # "off" while they are off


@dataclass(frozen=True)
class RoomRules:
    """What the host set for a room: announcements only, or one message per N seconds."""

    read_only: bool = False
    slow_mode: int = 0


def require_host(user: User) -> None:
    """Answer 403 ``host_only`` unless ``user`` is the host."""
    if not user.host:
        raise ApiError(403, "host_only", "Only the host can do that.")


def room_rules(storage: Storage, room: str) -> RoomRules:
    """Return the rules of ``room``."""
    return _rules(storage.get_settings([_ROOM + room])[0])


def rules_of(storage: Storage, rooms: list[str]) -> dict[str, RoomRules]:
    """Return the rules of each of ``rooms``, in one read."""
    values = storage.get_settings([_ROOM + room for room in rooms]) if rooms else []
    return {room: _rules(value) for room, value in zip(rooms, values, strict=True)}


def set_room_rules(storage: Storage, room: str, rules: RoomRules) -> None:
    """Store the rules of ``room`` (the defaults remove them)."""
    value = None if rules == RoomRules() else json.dumps(
        {"read_only": rules.read_only, "slow_mode": rules.slow_mode}
    )
    storage.set_setting(_ROOM + room, value)


def forget_room(storage: Storage, room: str) -> None:
    """Drop a closed room's rules, so a new room of that name starts without them."""
    storage.set_setting(_ROOM + room, None)


def mute(storage: Storage, session: str, name: str, until: int | None) -> None:
    """Mute a session until ``until`` (ms), or until unmuted."""
    storage.set_setting(_MUTE + session, json.dumps({"user": name, "until": until}))


def unmute(storage: Storage, session: str) -> None:
    """Lift a mute."""
    storage.set_setting(_MUTE + session, None)


def ban(storage: Storage, address: str, name: str, by: str) -> None:
    """Refuse ``address`` logins, posts and streams until the ban is lifted."""
    storage.set_setting(BAN + address, json.dumps({"user": name, "by": by, "at": now_ms()}))


def bans(storage: Storage) -> list[dict]:
    """Return every ban: address, user, by, at."""
    found = storage.settings_with_prefix(BAN)
    return sorted(
        ({"address": key[len(BAN):], **json.loads(value)} for key, value in found.items()),
        key=lambda entry: entry["at"],
    )


def private_messages_on(storage: Storage) -> bool:
    """True unless the host turned private messages off."""
    return storage.get_settings([_PRIVATE_MESSAGES])[0] != "off"


def set_private_messages(storage: Storage, on: bool) -> None:
    """Turn private messages on or off for everyone."""
    storage.set_setting(_PRIVATE_MESSAGES, None if on else "off")


def check_not_banned(storage: Storage) -> None:
    """Answer 403 ``banned`` to a client address the host banned."""
    _refuse_banned(storage.get_settings([BAN + client_address()])[0])


def post_setting_keys(session_id: str, room: str) -> list[str]:
    """The settings :func:`check_post` reads, in its order."""
    return [_ROOM + room, _MUTE + session_id, BAN + client_address()]


def check_post(user: User, room: str, values: list[str | None]) -> list[Window]:
    """Refuse a post the host's rules forbid (banned, muted, read-only room); return the
    rate window slow mode adds, which storage counts with the append.

    ``values`` are the settings of :func:`post_setting_keys`, read with the session.
    """
    room_value, mute_value, ban_value = values
    _refuse_banned(ban_value)
    _refuse_muted(mute_value)
    if user.host:
        return []
    rules = _rules(room_value)
    if rules.read_only:
        raise ApiError(403, "read_only", f"Only the host can post in #{room} now.")
    if not rules.slow_mode:
        return []
    sentence = f"#{room} is in slow mode: one message every {rules.slow_mode} s."
    return [(f"slow:{room}:{user.session}", RateLimit(1, rules.slow_mode),
             lambda wait: too_soon(wait, "slow_mode", sentence))]


def private_message_setting_keys(session_id: str) -> list[str]:
    """The settings :func:`check_private_message` reads, in its order."""
    return [_MUTE + session_id, BAN + client_address(), _PRIVATE_MESSAGES]


def check_private_message(user: User, values: list[str | None]) -> None:
    """Refuse a private message the host's rules forbid: banned, muted, turned off.

    ``values`` are the settings of :func:`private_message_setting_keys`.
    """
    mute_value, ban_value, pm_value = values
    _refuse_banned(ban_value)
    _refuse_muted(mute_value)
    if pm_value == "off" and not user.host:
        raise ApiError(
            403, "private_messages_off", "The host has turned private messages off for now."
        )


def muted_until(storage: Storage, session: str) -> tuple[bool, int | None]:
    """Return whether a session is muted now, and until when (ms, None for no end)."""
    value = storage.get_settings([_MUTE + session])[0]
    if value is None:
        return False, None
    until = json.loads(value)["until"]
    return (until is None or until > now_ms()), until


def _rules(value: str | None) -> RoomRules:
    if value is None:
        return RoomRules()
    data = json.loads(value)
    return RoomRules(bool(data["read_only"]), int(data["slow_mode"]))


def _refuse_banned(value: str | None) -> None:
    if value is not None:
        raise ApiError(403, "banned", "The host has banned this device from the chat.")


def _refuse_muted(value: str | None) -> None:
    if value is None:
        return
    until = json.loads(value)["until"]
    if until is not None and until <= now_ms():
        return
    ends = "until the host unmutes you" if until is None else "for a while"
    raise ApiError(403, "muted", f"The host has muted you {ends}.", extra={"until": until})
