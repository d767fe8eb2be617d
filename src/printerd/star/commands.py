"""
The lengths of Star Line mode and StarPRNT commands, byte-exact (Star's "STAR Line Mode Command
Specifications" and "StarPRNT Command Specifications").

Star commands start with ESC; a few single control bytes act on their own (the parser handles
those).  ``measure(buf, pos)`` looks at the ESC command at ``buf[pos]`` and returns its name and
total length, or None while more bytes are needed to know the length.  A payload's length comes
from its length field, so a long image streams past without being buffered.

``measure_raster(buf, pos)`` measures inside raster mode (``ESC * r A`` .. ``ESC * r B``, the
Star Graphic mode of TSP100 drivers), where ``b n1 n2`` carries one row of dots.
"""

from __future__ import annotations

from typing import Callable, Optional

from printerd.escpos.commands import Buf, Measured, command_name as escpos_command_name
from printerd.star.content import digit

ESC, GS, RS, FS, DLE = 0x1B, 0x1D, 0x1E, 0x1C, 0x10
NUL, LF = 0x00, 0x0A

# Longest run a terminated command may take before we call it malformed and resynchronise:
# 32 tab stops, a barcode's data, "ESC # ... LF NUL" memory switch and version commands, and
# the ASCII decimal parameter of raster commands ("max. 255 digits").
TERMINATED_LIMITS = {"tabs": 33, "ESC b": 255, "LF NUL": 64, "ESC * r": 260}

Measurer = Callable[[Buf, int, str], Optional[Measured]]


def _u16(buf: Buf, at: int) -> int:
    return buf[at] | (buf[at + 1] << 8)


def _need(buf: Buf, pos: int, count: int) -> bool:
    """True when fewer than ``count`` bytes from pos are buffered."""
    return len(buf) - pos < count


def _fixed(length: int) -> Measurer:
    def measure_fixed(buf: Buf, pos: int, name: str) -> Optional[Measured]:
        return Measured(name, length)

    return measure_fixed


def _terminated(buf: Buf, pos: int, header: int, name: str, end: bytes,
                limit: int) -> Optional[Measured]:
    """A command whose data runs from ``header`` up to and including ``end``."""
    start = pos + header
    found = buf.find(end, start, start + limit + len(end))
    if found >= 0:
        return Measured(name, found + len(end) - pos)
    if len(buf) - start >= limit + len(end):
        # No terminator where one must be: take what we allow and resynchronise after it.
        return Measured(name, header + limit, known=False)
    return None


def _tabs(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # ESC D n1 .. nk NUL (horizontal tabs), ESC B n1 .. nk NUL (vertical tabs): 32 at most.
    return _terminated(buf, pos, 2, name, b"\x00", TERMINATED_LIMITS["tabs"])


def _lf_nul(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # ESC # ... LF NUL (memory switches, ESC # * version inquiry), ESC ? LF NUL (reset).
    return _terminated(buf, pos, 2, name, b"\x0a\x00", TERMINATED_LIMITS["LF NUL"])


def _page_length(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # ESC C n (lines), ESC C NUL n (24 mm units).
    if _need(buf, pos, 3):
        return None
    return Measured(name, 4 if buf[pos + 2] == 0 else 3)


def _bit_image(per_column: int) -> Measurer:
    # ESC K / ESC L n1 n2 (8-dot columns), ESC X n1 n2 (24-dot columns, 3 bytes each),
    # ESC k n1 n2 (24 rows of n bytes): (n1 + 256 n2) x per_column data bytes.
    def measure_bit_image(buf: Buf, pos: int, name: str) -> Optional[Measured]:
        if _need(buf, pos, 4):
            return None
        return Measured(name, 4 + _u16(buf, pos + 2) * per_column)

    return measure_bit_image


def _barcode(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # ESC b n1 n2 n3 n4 d1 .. dk RS
    return _terminated(buf, pos, 6, name, b"\x1e", TERMINATED_LIMITS["ESC b"])


def _raster_setting(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # ESC * r A / B / C / R: no parameter; ESC * r E/F/P/Q/T/K/Y n NUL and ESC * r m l/r n NUL:
    # an ASCII decimal up to NUL.  Anything else after ESC * is not Star (ESC/POS's ESC * m
    # bit image, say): the parser decides.
    if _need(buf, pos, 4):
        return None
    if buf[pos + 2] != ord("r"):
        return Measured(name, 2, known=False)
    letter = chr(buf[pos + 3])
    if letter in "ABCR":
        return Measured(f"ESC * r {letter}", 4)
    return _terminated(buf, pos, 4, f"ESC * r {letter}", b"\x00", TERMINATED_LIMITS["ESC * r"])


def _esc_rs(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # ESC RS x n: font (F), automatic status (a), ETB counter (E), density (d), speed (r),
    # print area (A), Thai composition (R), colours (c, C), black mark (m), head check (#)...
    # all one letter and one parameter.
    if _need(buf, pos, 3):
        return None
    return Measured(f"ESC RS {chr(buf[pos + 2])}", 4)


def _esc_fs(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # ESC FS p n m: print logo n; ESC FS M ...: MICR (five bytes).
    if _need(buf, pos, 3):
        return None
    letter = buf[pos + 2]
    if letter in (ord("p"), ord("M")):
        return Measured(f"ESC FS {chr(letter)}", 5)
    return Measured(name, 3, known=False)


def _qr(buf: Buf, pos: int) -> Optional[Measured]:
    # ESC GS y S s n (model, error level, cell size), ESC GS y D 1 m nL nH d1 .. dk (data),
    # ESC GS y P (print), ESC GS y I (information request).
    if _need(buf, pos, 4):
        return None
    letter = chr(buf[pos + 3])
    if letter == "S":
        return Measured("ESC GS y S", 6)
    if letter in "PI":
        return Measured(f"ESC GS y {letter}", 4)
    if letter == "D":
        if _need(buf, pos, 5):
            return None
        if buf[pos + 4] != ord("1"):
            return Measured("ESC GS y D", 5, known=False)
        if _need(buf, pos, 8):
            return None
        return Measured("ESC GS y D", 8 + _u16(buf, pos + 6))
    return Measured("ESC GS y", 4, known=False)


def _pdf417(buf: Buf, pos: int) -> Optional[Measured]:
    # ESC GS x S 0 n p1 p2 (size), ESC GS x S 1/2/3 n (error level, module width, aspect),
    # ESC GS x D nL nH d1 .. dk (data), ESC GS x P (print), ESC GS x I (information request).
    if _need(buf, pos, 4):
        return None
    letter = chr(buf[pos + 3])
    if letter == "S":
        if _need(buf, pos, 5):
            return None
        return Measured("ESC GS x S", 8 if buf[pos + 4] == ord("0") else 6)
    if letter in "PI":
        return Measured(f"ESC GS x {letter}", 4)
    if letter == "D":
        if _need(buf, pos, 6):
            return None
        return Measured("ESC GS x D", 6 + _u16(buf, pos + 4))
    return Measured("ESC GS x", 4, known=False)


def _page_mode(buf: Buf, pos: int) -> Optional[Measured]:
    # ESC GS P 0/1/6/7/8 (page mode on/off, print, cancel), ESC GS P 2 n (direction),
    # ESC GS P 3 xL xH yL yH dxL dxH dyL dyH (print area), ESC GS P 4/5 nL nH (vertical
    # position, absolute or relative); n as an ASCII digit or a binary value.
    if _need(buf, pos, 4):
        return None
    return Measured("ESC GS P", {2: 5, 3: 12, 4: 6, 5: 6}.get(digit(buf[pos + 3]), 4))


def _raster_image(buf: Buf, pos: int) -> Optional[Measured]:
    # StarPRNT ESC GS S m xL xH yL yH n d1 .. dk: x bytes per row, y rows (m = 1: one colour).
    if _need(buf, pos, 9):
        return None
    size = _u16(buf, pos + 4) * _u16(buf, pos + 6)
    return Measured("ESC GS S", 9 + size, known=buf[pos + 3] == 1)


_ESC_GS_FIXED = {"t": 4, "a": 4, "h": 4, "A": 5, "R": 5, "\x03": 6}


def _esc_gs(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    if _need(buf, pos, 3):
        return None
    letter = chr(buf[pos + 2])
    label = "ESC GS ETX" if letter == "\x03" else f"ESC GS {letter}"
    if letter in _ESC_GS_FIXED:
        return Measured(label, _ESC_GS_FIXED[letter])
    special = {"y": _qr, "x": _pdf417, "P": _page_mode, "S": _raster_image}.get(letter)
    if special is not None:
        return special(buf, pos)
    if letter == "#":
        return _terminated(buf, pos, 3, label, b"\x0a\x00", TERMINATED_LIMITS["LF NUL"])
    return Measured(_printable(label), 3, known=False)


def _printable(name: str) -> str:
    return "".join(c if 0x21 <= ord(c) <= 0x7E or c == " " else f"0x{ord(c):02x}" for c in name)


_CONTROL_NAMES = {0x06: "ACK", 0x07: "BEL", 0x0C: "FF", 0x0E: "SO", 0x14: "DC4", 0x16: "SYN",
                  0x1C: "FS", 0x1D: "GS", 0x1E: "RS"}

_ESC: dict[int, Measurer] = {ord(k): _fixed(v) for k, v in {
    # no parameter
    "@": 2, "E": 2, "F": 2, "4": 2, "5": 2, "M": 2, "P": 2, ":": 2, "g": 2, "0": 2, "O": 2,
    "p": 2, "q": 2, "\x0e": 2, "\x14": 2,
    # one parameter
    "-": 3, "_": 3, "W": 3, "h": 3, "R": 3, "/": 3, " ": 3, "$": 3, "a": 3, "z": 3, "J": 3,
    "I": 3, "N": 3, "l": 3, "Q": 3, "%": 3, "d": 3, "\x0c": 3,
    "\x06": 3,  # ESC ACK SOH: automatic status request
    # two parameters
    "i": 4, "s": 4, "\x07": 4, "\x16": 4,
}.items()}
_ESC.update({ord(k): v for k, v in {
    "C": _page_length, "B": _tabs, "D": _tabs, "K": _bit_image(1), "L": _bit_image(1),
    "X": _bit_image(3), "k": _bit_image(24), "b": _barcode, "#": _lf_nul, "?": _lf_nul,
    "*": _raster_setting, "\x1d": _esc_gs, "\x1e": _esc_rs, "\x1c": _esc_fs,
}.items()})


def command_name(code: int) -> str:
    return escpos_command_name("ESC", code, _CONTROL_NAMES)


# What follows ESC p in ESC/POS's drawer kick ESC p m t1 t2; Star's ESC p (JIS Kanji mode) is
# never followed by one of these.
_DRAWER_KICK_PINS = frozenset({0, 1, 0x30, 0x31})


def measure(buf: Buf, pos: int) -> Optional[Measured]:
    """
    The Star command at ``buf[pos]`` (which must be ESC), or None if incomplete.  An ESC p
    followed by a drawer pin is ESC/POS's drawer kick: measured as that, unknown to Star.
    """
    if _need(buf, pos, 2):
        return None
    code = buf[pos + 1]
    if code == ord("p"):
        if _need(buf, pos, 3):
            return None
        if buf[pos + 2] in _DRAWER_KICK_PINS:
            return Measured("ESC p", 5, known=False)
    measurer = _ESC.get(code)
    if measurer is None:
        return Measured(command_name(code), 2, known=False)
    return measurer(buf, pos, command_name(code))


def measure_raster(buf: Buf, pos: int) -> Optional[Measured]:
    """In raster mode: ``b n1 n2`` and one row of n1 + 256 n2 bytes, or an ESC command."""
    if buf[pos] == ESC:
        return measure(buf, pos)
    if buf[pos] == ord("b"):
        if _need(buf, pos, 3):
            return None
        return Measured("raster b", 3 + _u16(buf, pos + 1))
    return Measured("raster byte", 1, known=False)
