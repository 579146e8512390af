"""Posting a message (to a room, or privately): everything a post checks, then its answer.

The view checks what needs the host's rules (bans, mutes, read-only rooms, slow mode);
the name hold, the rate windows and the ``Idempotency-Key`` are checked by storage in the
same atomic step as the append, which with Redis is one round trip for all of them.
"""

from __future__ import annotations

from flask import Response

from .chat import Chat
from .events import Draft, Event
from .guards import post_windows, rate_refusal
from .idempotency import request_key
from .identity import User, name_taken
from .storage import NameTaken, RateExceeded


def post_as(chat: Chat, user: User, draft: Draft) -> Response:
    """Publish ``draft`` as ``user``'s message; answer 201 with it (409, 429 if refused)."""
    windows = post_windows(chat.config, user.session)
    guarded = draft.guarded(
        key=request_key(user.session), holds=chat.names.hold_for(user),
        counts=tuple((key, limit.count, limit.seconds) for key, limit, _ in windows),
    )
    try:
        return posted(*chat.post(guarded))
    except NameTaken:
        raise name_taken(user) from None
    except RateExceeded as exc:
        raise rate_refusal(windows[exc.index], exc.wait) from None


def posted(event: Event, fresh: bool) -> Response:
    """Answer a post: 201 with the message, whether made now or by the first try."""
    headers = {} if fresh else {"Idempotent-Replayed": "true"}
    return Response(event.data, status=201, mimetype="application/json", headers=headers)
