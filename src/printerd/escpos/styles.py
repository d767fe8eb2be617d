"""
Print styles: what ESC E, ESC -, ESC !, GS !, GS B, ESC M and ESC a do to the characters that follow.

Pure: ``apply(style, name, command)`` returns the style after a command; the parser cuts each
line into runs of one style.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Optional

ALIGNMENTS = ("left", "center", "right")
FONTS = ("A", "B", "C")
# Character cells in dots (width, height), before the size multiples: Epson's font A is
# 12 x 24, font B 9 x 17 (font C, where a model has it, is drawn as B).
CELLS = {"A": (12, 24), "B": (9, 17), "C": (9, 17)}


@dataclass(frozen=True)
class Style:
    """How a run of characters is printed. The defaults are the printer's after ESC @."""

    bold: bool = False
    underline: int = 0  # dots: 0, 1 or 2
    width: int = 1  # character width multiple, 1..8
    height: int = 1  # character height multiple, 1..8
    invert: bool = False  # white on black (GS B)
    font: str = "A"

    @cached_property
    def json(self) -> dict[str, Any]:
        """Only what differs from the default, to keep the receipt JSON small (computed once:
        styles are interned, see ``apply``)."""
        return {key: getattr(self, key) for key in _FIELDS
                if getattr(self, key) != getattr(_DEFAULT, key)}


_FIELDS = ("bold", "underline", "width", "height", "invert", "font")
_DEFAULT = Style()
# Every style in use is one shared object, so the parser compares styles with ``is`` and each
# style's JSON is built once.
_INTERNED: dict[Style, Style] = {_DEFAULT: _DEFAULT}
PLAIN = _DEFAULT


def _select_print_mode(style: Style, n: int) -> Style:
    # ESC ! n sets font, emphasis, double height/width and underline at once.
    return replace(style, font="B" if n & 0x01 else "A", bold=bool(n & 0x08),
                   height=2 if n & 0x10 else 1, width=2 if n & 0x20 else 1,
                   underline=1 if n & 0x80 else 0)


def _character_size(style: Style, n: int) -> Style:
    # GS ! n: high nibble width - 1, low nibble height - 1 (each 0..7).
    return replace(style, width=min((n >> 4) & 0x0F, 7) + 1, height=min(n & 0x0F, 7) + 1)


_STYLE_COMMANDS = {
    "ESC E": lambda style, n: replace(style, bold=bool(n & 1)),
    "ESC G": lambda style, n: replace(style, bold=bool(n & 1)),  # double strike looks bold
    "ESC -": lambda style, n: replace(style, underline=n & 0x03 if n & 0x03 != 3 else 0),
    "ESC !": _select_print_mode,
    "GS !": _character_size,
    "GS B": lambda style, n: replace(style, invert=bool(n & 1)),
    "ESC M": lambda style, n: replace(style, font=FONTS[n & 0x03] if n & 0x03 < 3 else "A"),
}
STYLE_COMMAND_NAMES = frozenset(_STYLE_COMMANDS) | {"ESC a"}


def apply(style: Style, name: str, command: bytes) -> Style:
    """The style after a one-parameter style command (``command`` is its whole bytes)."""
    key = (id(style), name, command[2])  # interned styles live for good: their ids are stable
    found = _APPLIED.get(key)
    if found is None:
        if len(_APPLIED) >= _APPLIED_LIMIT:  # a client cycling through every combination
            _APPLIED.clear()
        changed = _STYLE_COMMANDS[name](style, command[2])
        found = _APPLIED[key] = _INTERNED.setdefault(changed, changed)
    return found


# (style id, command, parameter) -> the resulting style: receipts repeat the same few changes.
_APPLIED: dict[tuple[int, str, int], Style] = {}
_APPLIED_LIMIT = 10_000
# _INTERNED is bounded by the fields: 2 x 3 x 8 x 8 x 2 x 3 = 2,304 styles at most.


def intern(style: Style) -> Style:
    """The shared object equal to ``style``: parsers compare styles with ``is``."""
    return _INTERNED.setdefault(style, style)


def alignment(command: bytes) -> Optional[str]:
    """ESC a n: 0/48 left, 1/49 center, 2/50 right; anything else is ignored."""
    n = command[2] & 0x03 if command[2] in (0, 1, 2, 48, 49, 50) else None
    return None if n is None else ALIGNMENTS[n]
