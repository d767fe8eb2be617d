"""
Case folding for search: what ``q`` ignores when it looks for a substring.

Unicode's simple case folding, one character to one, as SQLite's FTS5 folds (its trigram
tokenizer with ``case_sensitive 0``): "Σ", "σ" and "ς" are one letter, so are "ẞ" and "ß",
"Ä" and "ä", "Ж" and "ж"; but "ß" is not "ss" (that is full folding), "ﬁ" is not "fi", accents
stay ("é" is not "e"), and "İ" is not "i".
"""

from __future__ import annotations

import functools
import re


def simple_fold(char: str) -> str:
    """One character's simple case folding."""
    folded = char.casefold()
    if len(folded) == 1:
        return folded
    lowered = char.lower()
    return lowered if len(lowered) == 1 else char


@functools.cache
def _after_lower() -> tuple[re.Pattern[str], dict[int, str]]:
    """
    The characters ``str.lower`` leaves (or makes) that simple folding changes further, such
    as "ς" (Python lowers a final "Σ" to it), "ſ" or "ϐ": a pattern that finds them, and the
    table that folds them.  Built once (about 50 ms): the Basic Multilingual Plane, walked.
    """
    table = {}
    for code in range(0x10000):
        char = chr(code)
        lowered = char.lower()
        if len(lowered) == 1 and simple_fold(lowered) != lowered:
            table[ord(lowered)] = simple_fold(lowered)
    pattern = re.compile("[" + "".join(re.escape(chr(code)) for code in sorted(table)) + "]")
    return pattern, table


def fold(text: str) -> str:
    """``text`` with every character simply case folded (fast: ``str.lower`` does most)."""
    lowered = text.lower()
    if lowered.isascii():
        return lowered
    pattern, table = _after_lower()
    return lowered.translate(table) if pattern.search(lowered) else lowered


def folded_contains(text: str, folded_needle: str) -> bool:
    """Whether ``text`` holds ``folded_needle`` (already folded), ignoring case."""
    return folded_needle in fold(text)
