"""
What one rendering may take, whatever the receipt asks for.

A small job can ask for a great deal of paper: 20 KB of text at 8 x 8 character size is 60 m
of receipt, and a PNG of it would take gigabytes.  Each rendering gets a ``Budget``: past it
the rendering stops where it is and says so at its end ("rendering truncated ..."), so the
memory a rendering takes stays bounded (the PNG's height bounds its pixels; characters bound
text and HTML; drawn graphics bound the QR, barcode and image work).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from typing import Callable

# 576 x 40,000 dots is 23 MB as Pillow keeps it (a byte per dot), about 5 m of paper: no
# real receipt is longer.
MAX_HEIGHT_DOTS = 40_000
MAX_CHARACTERS = 2_000_000  # text and HTML output
MAX_GRAPHICS = 1_000  # barcodes, 2D codes and images drawn in one rendering


@dataclass
class Budget:
    """The rendering's remaining allowance; ``truncated`` once any of it ran out."""

    height: int = MAX_HEIGHT_DOTS
    characters: int = MAX_CHARACTERS
    graphics: int = MAX_GRAPHICS
    truncated: bool = False

    def take_height(self, dots: int) -> bool:
        return self._take("height", dots)

    def take_text(self, characters: int) -> bool:
        return self._take("characters", characters)

    def take_graphic(self) -> bool:
        return self._take("graphics", 1)

    def _take(self, name: str, amount: int) -> bool:
        left = getattr(self, name)
        if self.truncated or amount > left:
            self.truncated = True
            return False
        setattr(self, name, left - amount)
        return True

    @staticmethod
    def notice() -> str:
        return "[rendering truncated: this receipt is longer than printerd draws]"


def _malloc_trim() -> Callable[[], None]:
    """
    glibc keeps what a reader thread freed in that thread's malloc arena: after one large PNG
    the daemon stayed ~50 MB bigger for good.  ``malloc_trim(0)`` hands it back to the system
    (it takes well under a millisecond); elsewhere there is nothing to call.
    """
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


release_memory = _malloc_trim()
