"""Private messages between two users, and their conversation's history."""

from __future__ import annotations

from flask import Blueprint, Response

from .. import moderation, validation
from ..chat import Chat
from ..current import get_chat
from ..errors import ApiError
from ..events import Draft, dm_channel, now_ms, user_channel
from ..identity import User, require_user
from ..posting import decided_again_when_stale, post_as, require_poster
from .rooms import history_response

bp = Blueprint("users", __name__, url_prefix="/api/users")


def _other(chat: Chat, me: User, raw: str) -> tuple[str, str]:
    """Return the display name and session of the user called ``raw``, or answer 404 or 400.

    That is whoever logged in under the name last: a conversation is with that login.
    """
    name = validation.display_name(raw)
    key = validation.name_key(name)
    if key == me.key:
        raise ApiError(400, "message_to_self", "Private messages go to someone else.")
    found = chat.storage.find_user(key)
    if found is None:
        raise ApiError(404, "unknown_user", f"Nobody called {name!r} is in this chat.")
    return found


@bp.post("/<name>/messages")
@decided_again_when_stale
def send(name: str) -> Response:
    """Send a private message: both parties receive a ``dm`` event on every stream."""
    chat = get_chat()
    decision = require_poster(moderation.private_message_setting_keys)
    me = decision.user
    to_name, to_session = _other(chat, me, name)
    text = validation.message_text(validation.body_field("text"))
    decision.check(lambda rules: moderation.check_private_message(me, rules))
    fields = {"from": me.name, "to": to_name, "text": text, "ts": now_ms()}
    draft = Draft.of(dm_channel(me.session, to_session), "dm",
                     also=(user_channel(me.session), user_channel(to_session)), **fields)
    return post_as(chat, decision, draft)


@bp.get("/<name>/messages")
def conversation(name: str) -> Response:
    """The conversation with that user, oldest first."""
    chat = get_chat()
    me = require_user()
    _, other = _other(chat, me, name)
    return history_response(chat, dm_channel(me.session, other))
