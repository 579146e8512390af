"""What the request being answered is about: its chat, and the language of its page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app, g, request

from . import i18n

if TYPE_CHECKING:
    from .chat import Chat


def get_chat() -> Chat:
    """Return the chat of the current app."""
    return current_app.extensions["chatroom"]


def page_language() -> str:
    """Return the language of the page being answered (see :mod:`.i18n`)."""
    if "language" not in g:
        g.language = i18n.page_language(
            request.cookies.get(i18n.COOKIE), request.accept_languages.values()
        )
    return g.language
