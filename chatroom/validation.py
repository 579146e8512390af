"""The rules for what users type: display names, room names, message texts, request bodies."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from flask import request

from . import lookalike
from .errors import ApiError

NAME_MAX = 32
TEXT_MAX = 2000
ROOM_MAX = 32
ROOM_RULE = "A room name is 1 to 32 letters or digits of any script, - or _ (no spaces)."
# The same rule for the page's script (JavaScript's \w is ASCII only).
ROOM_PATTERN_JS = r"[\p{L}\p{N}_\-]{1,32}"
# "@name" in a message: up to a space or punctuation that ends a sentence.
_MENTION = re.compile(r"@([^\s@]{1,32}?)[.,;:!?)]*(?=\s|$)")
_SURROGATE = re.compile("[\ud800-\udfff]")


def display_name(raw: Any) -> str:
    """Return a valid display name (1–32 characters after trimming, no control characters)."""
    if not isinstance(raw, str):
        raise ApiError(400, "invalid_username", "Give a username: 1 to 32 characters.")
    name = raw.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise ApiError(
            400, "invalid_username",
            f"A username is 1 to {NAME_MAX} characters; this one has {len(name)}.",
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in name):
        raise ApiError(
            400, "invalid_username", "A username cannot contain control characters or line breaks."
        )
    if any(lookalike.is_invisible(ch) for ch in name):
        raise ApiError(
            400, "invalid_username", "A username cannot contain invisible characters."
        )
    if lookalike.most_marks(name) > lookalike.MAX_MARKS:
        raise ApiError(
            400, "invalid_username",
            f"A username has at most {lookalike.MAX_MARKS} accents on one letter.",
        )
    return name


name_key = lookalike.name_key


def room_name(raw: Any) -> str:
    """Return a valid room name, NFKC and case folded: ``maths-101``, ``一班``, ``café``.

    1 to 32 letters or digits of any script, ``-`` or ``_``; no spaces, no punctuation.
    """
    name = unicodedata.normalize("NFKC", raw.strip()).casefold() if isinstance(raw, str) else ""
    if not 1 <= len(name) <= ROOM_MAX or not all(_room_char(ch) for ch in name):
        raise ApiError(400, "invalid_room_name", ROOM_RULE)
    return name


def _room_char(ch: str) -> bool:
    # Letters and digits of every script (categories L and N), as ROOM_PATTERN_JS says.
    return ch in "-_" or unicodedata.category(ch)[0] in "LN"


def message_text(raw: Any) -> str:
    """Return a valid message text (1–2000 characters after trimming)."""
    if not isinstance(raw, str):
        raise ApiError(400, "invalid_text", "Give the message as text.")
    text = raw.strip()
    if not text:
        raise ApiError(400, "empty_text", "The message is empty.")
    if _SURROGATE.search(text):
        # JSON can carry half of a UTF-16 pair ("\\ud800"); no text on a page can.
        raise ApiError(400, "invalid_text", "The message holds characters that are not text.")
    if len(text) > TEXT_MAX:
        raise ApiError(
            400, "text_too_long",
            f"A message is at most {TEXT_MAX} characters; this one has {len(text)}.",
        )
    return text


def mentions(text: str) -> list[str]:
    """Return the name keys of the people ``text`` mentions with ``@name``."""
    if "@" not in text:
        return []
    return list(dict.fromkeys(name_key(m) for m in _MENTION.findall(text)))


def json_object() -> dict[str, Any] | None:
    """Return the request's JSON object body, or None if it has none (or not an object)."""
    if not request.is_json:
        return None
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested thousands deep
        return None
    return data if isinstance(data, dict) else None


def body_field(name: str) -> Any:
    """Return field ``name`` from a JSON object body or a form; None when it is absent."""
    if request.is_json:
        data = json_object()
        if data is None:
            raise ApiError(
                400, "invalid_json", f'The body must be a JSON object, like {{"{name}": …}}.'
            )
        return data.get(name)
    return request.form.get(name)


def int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    """Return query argument ``name`` as a whole number in [low, high], or ``default``."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid_{name}", f"{name} must be a whole number.") from None
    if not low <= value <= high:
        raise ApiError(400, f"invalid_{name}", f"{name} must be between {low} and {high}.")
    return value
