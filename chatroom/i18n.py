"""English and Simplified Chinese, from gettext catalogs (``chatroom/locale``).

Strings are written in English in the code (``_("…")`` in Python and templates, ``t("…")``
in the pages' scripts) and extracted, translated and compiled with Babel's tools; at run
time the standard library's gettext reads the compiled catalogs (Babel's own locale data,
some 30 MB, is not needed). A page follows its reader (a cookie set by the page's switch,
else ``Accept-Language``); the console follows the system (``CHATROOM_LANG``, then
``LC_ALL``, ``LC_MESSAGES``, ``LANG``, or Windows' display language) and falls back to
English where the console cannot show Chinese.
"""

from __future__ import annotations

import functools
import gettext
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ENGLISH = "en"
CHINESE = "zh-Hans"
COOKIE = "chatroom_lang"
DOMAIN = "chatroom"
LOCALE_DIR = Path(__file__).parent / "locale"
# The folder of each language's catalog. Not Babel's "zh_Hans_CN": the catalog is for the
# script, whatever the region (mainland, Singapore), and gettext looks it up by this name.
_FOLDERS = {CHINESE: "zh_Hans"}


@functools.cache
def catalog(language: str) -> gettext.NullTranslations:
    """Return the translations of ``language`` (English: the text as written)."""
    if language not in _FOLDERS:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[_FOLDERS[language]])


def normalise(tag: str | None) -> str | None:
    """Return the language a tag asks for (any ``zh`` is Simplified Chinese), or None."""
    if not tag:
        return None
    tag = tag.strip().lower().replace("_", "-")
    if tag.startswith("zh"):
        return CHINESE
    if tag.startswith("en") or tag in ("c", "posix"):
        return ENGLISH
    return None


def page_language(cookie: str | None, accepted: Iterable[str]) -> str:
    """Return the language of a page: the reader's choice, else their browser's, else English."""
    chosen = normalise(cookie)
    if chosen is not None:
        return chosen
    for tag in accepted:
        found = normalise(tag)
        if found is not None:
            return found
    return ENGLISH


def strings(language: str) -> dict[str, str]:
    """Return every translated text of ``language``, for the pages' scripts."""
    if language == ENGLISH:
        return {}
    # GNUTranslations keeps its messages in _catalog; "" is the catalog's header.
    messages = getattr(catalog(language), "_catalog", {})
    return {k: v for k, v in messages.items() if isinstance(k, str) and k}


def _system_language(environ: Mapping[str, str]) -> str:
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return normalise(value.split(".")[0]) or ENGLISH
    if sys.platform == "win32":
        import ctypes
        import locale

        lcid = ctypes.windll.kernel32.GetUserDefaultUILanguage()
        return normalise(locale.windows_locale.get(lcid)) or ENGLISH
    return ENGLISH


def _can_show_chinese(stream: object) -> bool:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        "中文：，。".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


@functools.cache
def console_language() -> str:
    """Return the language of the console: ``CHATROOM_LANG``, else the system's."""
    chosen = normalise(os.environ.get("CHATROOM_LANG")) or _system_language(os.environ)
    if chosen == CHINESE and not _can_show_chinese(sys.stdout):
        return ENGLISH  # an ASCII console would print question marks, or fail
    return chosen


def _(message: str) -> str:
    """Translate a console text into the console's language."""
    return catalog(console_language()).gettext(message)


def N_(message: str) -> str:
    """Mark a text for extraction where it is defined; it is translated where it is shown."""
    return message
