"""Posting a message (to a room, or privately): everything a post checks, then its answer.

A post is decided on the poster's session, the host's rules that apply (bans, mutes,
read-only rooms, slow mode) and the room, as :meth:`Storage.recall` gives them: with
Redis, as this process read them for the previous post. The append then checks, in its
one atomic step, that all of that still holds, that the name is the poster's, the rate
windows and the ``Idempotency-Key``: with Redis a post is one round trip. When something
changed meanwhile, the post is decided again on what storage holds now.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from flask import Response, current_app, g, session

from .chat import Chat
from .errors import ApiError
from .events import Draft, Event, Expected
from .guards import Window, post_windows
from .idempotency import request_key
from .identity import User, name_taken, require_user, user_of
from .storage import GENERAL, NameTaken, RateExceeded, Room, Stale, Storage, Unavailable

View = TypeVar("View", bound=Callable[..., Response])

# Decisions made again on fresh values before a post is answered 503.
_TRIES = 3


class AlreadyPosted(Exception):
    """The post was made before (its Idempotency-Key): answer that message."""

    def __init__(self, event: Event) -> None:
        super().__init__(event)
        self.event = event


class Decision:
    """What a post is decided on: the poster, the settings read, the room (None: none)."""

    def __init__(self, storage: Storage, user: User, settings: list[str | None],
                 room: Room | None, keys: list[str], fresh: bool) -> None:
        self._storage = storage
        self.user = user
        self.settings = settings
        self.room = room
        self._fresh = fresh
        # Rate windows the host's rules add (slow mode), counted with the append.
        self.windows: list[Window] = []
        self.expected = Expected(
            user.session, user.name, user.host, tuple(zip(keys, settings, strict=True)),
            "" if room is None or room.name == GENERAL else room.name,
        )

    def check(self, rules: Callable[[list[str | None]], list[Window] | None]) -> None:
        """Run the host's ``rules`` on the settings, keeping the rate windows they add; a
        refusal made on settings remembered from an earlier post is made again on fresh
        ones (the host may have lifted it), and a post made before the rules changed (sent
        again with its key) is not refused."""
        try:
            self.windows = rules(self.settings) or []
        except ApiError:
            if not self._fresh:
                raise Stale from None
            key = request_key(self.user.session)
            prior = self._storage.posted(key) if key else None
            if prior is not None:
                raise AlreadyPosted(prior) from None
            raise


def require_poster(keys_for: Callable[[str], list[str]], room: str = GENERAL) -> Decision:
    """Return what a post is decided on: the logged-in user (or answer 401), the settings
    ``keys_for(session id)`` and ``room``."""
    sid = session.get("sid")
    if not isinstance(sid, str):
        require_user()  # answers 401
    keys = keys_for(sid)
    storage = current_app.extensions["chatroom"].storage
    fresh = g.get("afresh", False)
    found, values, place = storage.recall(sid, keys, room, fresh=fresh)
    fresh = fresh or not storage.remembers
    g.user = user_of(found)
    return Decision(storage, require_user(), values, place, keys, fresh)


def decided_again_when_stale(view: View) -> View:
    """Run a post's view again on fresh values when what it decided on has changed."""

    @functools.wraps(view)
    def run(*args: object, **kwargs: object) -> Response:
        for _ in range(_TRIES):
            try:
                return view(*args, **kwargs)
            except AlreadyPosted as done:
                return posted(done.event, False)
            except Stale:
                g.pop("user", None)
                g.afresh = True
        # Changed again between each fresh read and its append: a 503 the page resends.
        raise Unavailable("The host's rules kept changing while this post was made.")

    return run  # type: ignore[return-value]


def post_as(chat: Chat, decision: Decision, draft: Draft) -> Response:
    """Publish ``draft`` as the poster's message; answer 201 with it (409, 429 if refused)."""
    user = decision.user
    windows = post_windows(chat.config, user.session) + decision.windows
    guarded = draft.guarded(
        key=request_key(user.session), holds=chat.names.hold_for(user),
        counts=tuple((key, limit.count, limit.seconds) for key, limit, _ in windows),
        expects=decision.expected,
    )
    try:
        return posted(*chat.post(guarded))
    except NameTaken:
        raise name_taken(user) from None
    except RateExceeded as exc:
        raise windows[exc.index][2](exc.wait) from None


def posted(event: Event, fresh: bool) -> Response:
    """Answer a post: 201 with the message, whether made now or by the first try."""
    headers = {} if fresh else {"Idempotent-Replayed": "true"}
    return Response(event.data, status=201, mimetype="application/json", headers=headers)
