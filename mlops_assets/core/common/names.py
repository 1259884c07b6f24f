"""Names that come from outside (contributors, files, columns) made safe to store, log and
show: no control or direction-override characters, no unbounded length, no server paths."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME = 120
# Characters that reorder or hide text when shown (bidirectional overrides and isolates,
# zero-width marks): a file named "evil\u202egpj.csv" displays as "evilvsc.jpg".
_INVISIBLE = frozenset(
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)
_PATH = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)+")


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") or ch in _INVISIBLE


def _plain(text: str) -> bool:
    # Printable ASCII has none of them: most names, told apart without a look at each
    # character (a landing zone of 100,000 files is listed every tick).
    return text.isascii() and text.isprintable()


def unsafe_characters(text: str) -> list[str]:
    """The characters of ``text`` that must not reach a log line or a tag (as ``U+XXXX``)."""
    if _plain(text):
        return []
    return sorted({f"U+{ord(ch):04X}" for ch in text if _unsafe(ch)})


def safe_text(text: object, limit: int = MAX_NAME) -> str:
    """``text`` with unsafe characters replaced by ``?`` and cut to ``limit`` characters (the
    cut marked, with how much was left out)."""
    text = str(text)
    cleaned = text if _plain(text) else "".join("?" if _unsafe(ch) else ch for ch in text)
    if len(cleaned) > limit:
        return f"{cleaned[:limit]}…[{len(cleaned) - limit} more]"
    return cleaned


def name_problem(name: str) -> str | None:
    """Why ``name`` (a contributor's folder or a file's name) is refused, or None. Long names
    are not refused: :func:`safe_text` shortens them wherever they are shown."""
    if unsafe := unsafe_characters(name):
        return f"its name holds control or invisible characters ({', '.join(unsafe)})"
    if name in (".", "..") or "/" in name or "\\" in name:
        return "its name is a path, not a name"
    return None


def without_paths(text: str) -> str:
    """``text`` with absolute directory paths taken out (file names stay): messages shown to
    contributors never reveal where the server keeps things."""
    return _PATH.sub("", text)
