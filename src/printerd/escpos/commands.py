"""
The lengths of ESC/POS commands, byte-exact (Epson TM references).

``measure(buf, pos)`` looks at the command starting at ``buf[pos]`` (ESC, GS, FS or DLE) and
returns its name and total length, or None when more bytes are needed to know the length.
Only the header is needed: a payload's length comes from its length field, so a parser can
skip a 4 GiB ``GS 8 L`` payload as it streams by without buffering it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

ESC, GS, FS, DLE, DC2 = 0x1B, 0x1D, 0x1C, 0x10, 0x12

# Longest run a NUL-terminated command may take before we call it malformed and move on
# (GS k m=0..6 data is at most 255 bytes on Epson printers; ESC D takes at most 32 stops).
NUL_TERMINATED_LIMITS = {"GS k": 255, "ESC D": 32}


@dataclass(frozen=True, slots=True)
class Measured:
    """A command's name (``"GS V"``), total length in bytes, and what else the parser must know."""

    name: str
    length: int
    known: bool = True
    # FS q n: n images follow, each measured with measure_fsq_image.
    images_follow: int = 0


Buf = bytes | bytearray
Measurer = Callable[[Buf, int, str], Optional[Measured]]


def _fixed(params: int) -> Measurer:
    def measure_fixed(buf: Buf, pos: int, name: str) -> Optional[Measured]:
        return Measured(name, 2 + params)

    return measure_fixed


def _u16(buf: Buf, at: int) -> int:
    return buf[at] | (buf[at + 1] << 8)


def _need(buf: Buf, pos: int, count: int) -> bool:
    """True when fewer than ``count`` bytes from pos are buffered."""
    return len(buf) - pos < count


def _paren(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # GS ( X pL pH data, FS ( X ..., ESC ( X ...: pL + 256 pH data bytes.
    if _need(buf, pos, 5):
        return None
    return Measured(f"{name} {chr(buf[pos + 2])}", 5 + _u16(buf, pos + 3))


def _gs_8(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # GS 8 L p1 p2 p3 p4 data: a 32-bit length.
    if _need(buf, pos, 3):
        return None
    if buf[pos + 2] != ord("L"):
        return Measured(name, 2, known=False)
    if _need(buf, pos, 7):
        return None
    size = buf[pos + 3] | buf[pos + 4] << 8 | buf[pos + 5] << 16 | buf[pos + 6] << 24
    return Measured("GS 8 L", 7 + size)


def _raster(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # GS v 0 (raster bit image) and GS Q 0 (variable vertical size bit image) share a layout:
    # "0" m xL xH yL yH, then x bytes per row for y rows.
    if _need(buf, pos, 3):
        return None
    if buf[pos + 2] != 0x30:
        return Measured(name, 2, known=False)
    if _need(buf, pos, 8):
        return None
    return Measured(f"{name} 0", 8 + _u16(buf, pos + 4) * _u16(buf, pos + 6))


def _esc_star(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # ESC * m nL nH data: n columns of 1 byte (8-dot modes) or 3 bytes (24-dot modes).
    if _need(buf, pos, 3):
        return None
    if buf[pos + 2] == ord("r"):
        return _star(buf, pos, name)  # Star's ESC * r raster commands
    if _need(buf, pos, 5):
        return None
    columns = _u16(buf, pos + 3)
    per_column = 3 if buf[pos + 2] in (32, 33) else 1
    return Measured(name, 5 + columns * per_column, known=buf[pos + 2] in (0, 1, 32, 33))


def _gs_k(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # GS k m: m 0..6 data ends at NUL; m 65..78 one length byte then that many bytes.
    if _need(buf, pos, 3):
        return None
    m = buf[pos + 2]
    if m <= 6:
        return _nul_terminated(buf, pos, 3, name)
    if 65 <= m <= 78:
        if _need(buf, pos, 4):
            return None
        return Measured(name, 4 + buf[pos + 3])
    return Measured(name, 3, known=False)


def _nul_terminated(buf: Buf, pos: int, header: int, name: str) -> Optional[Measured]:
    limit = NUL_TERMINATED_LIMITS[name]
    start = pos + header
    end = buf.find(b"\x00", start, start + limit + 1)
    if end >= 0:
        return Measured(name, end + 1 - pos)
    if len(buf) - start > limit:
        # No terminator where one must be: take the data we allow and resynchronise after it.
        return Measured(name, header + limit, known=False)
    return None


def _esc_d(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    return _nul_terminated(buf, pos, 2, name)


def _gs_v_cut(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # GS V m: m 0, 1, 48, 49 plain cut; 65, 66, 97, 98, 103, 104 take a feed amount n.
    if _need(buf, pos, 3):
        return None
    if buf[pos + 2] in (65, 66, 97, 98, 103, 104):
        return Measured(name, 4)
    return Measured(name, 3, known=buf[pos + 2] in (0, 1, 48, 49))


def _gs_star(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # GS * x y data: define downloaded bit image, x * y * 8 bytes.
    if _need(buf, pos, 4):
        return None
    return Measured(name, 4 + buf[pos + 2] * buf[pos + 3] * 8)


def _fs_q(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # FS q n then n images, each xL xH yL yH + x * y * 8 bytes (measured one by one).
    if _need(buf, pos, 3):
        return None
    return Measured(name, 3, images_follow=buf[pos + 2])


def measure_fsq_image(buf: Buf, pos: int) -> Optional[Measured]:
    """One image of an ``FS q`` definition: xL xH yL yH then x * y * 8 bytes."""
    if _need(buf, pos, 4):
        return None
    return Measured("FS q image", 4 + _u16(buf, pos) * _u16(buf, pos + 2) * 8)


def _esc_amp(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # ESC & y c1 c2, then for each character c1..c2: x, then y * x bytes.
    if _need(buf, pos, 5):
        return None
    y, c1, c2 = buf[pos + 2], buf[pos + 3], buf[pos + 4]
    if c2 < c1:
        return Measured(name, 5, known=False)
    at = pos + 5
    for _ in range(c2 - c1 + 1):
        if _need(buf, at, 1):
            return None
        at += 1 + y * buf[at]
    if at > len(buf):
        return None
    return Measured(name, at - pos)


def _esc_c(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # ESC c 3 n, ESC c 4 n, ESC c 5 n: a sub-function byte and one parameter.
    return Measured(name, 4)


def _dle_eot(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # DLE EOT n; n 7, 8 and 18 take one more byte.
    if _need(buf, pos, 3):
        return None
    return Measured(name, 4 if buf[pos + 2] in (7, 8, 18) else 3)


_DLE_DC4_LENGTHS = {1: 5, 2: 5, 7: 4, 8: 10}


def _dle_dc4(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # DLE DC4 fn ...: 1 m t; 2 1 8; 7 m; 8 1 3 20 1 6 2 8.
    if _need(buf, pos, 3):
        return None
    length = _DLE_DC4_LENGTHS.get(buf[pos + 2])
    return Measured(name, length or 3, known=length is not None)


# Other dialects, measured so their payloads never turn into text, and reported by name.
def _esc_z(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    # ESC Z m n k dL dH data: the 2D code print of printers that select the symbol with GS Z.
    if _need(buf, pos, 7):
        return None
    return Measured(name, 7 + _u16(buf, pos + 5))


STAR_PREFIX = "Star "


def _star(buf: Buf, pos: int, name: str) -> Optional[Measured]:
    """
    An ESC command of Star Line mode / StarPRNT that ESC/POS lacks (ESC GS .., ESC RS ..,
    ESC b barcodes, ESC X / ESC k images, ESC * r raster): measured by Star's table so its
    parameters and data never print, and named "Star ..." so the receipt reports the dialect.
    """
    from printerd.star.commands import measure as star_measure  # star builds on this module

    star = star_measure(buf, pos)
    if star is None:
        return None
    if not star.known:
        return Measured(name, 2, known=False)
    return Measured(STAR_PREFIX + star.name, star.length)


def _table(fixed: dict[str, int], special: dict[str, Measurer]) -> dict[int, Measurer]:
    table: dict[int, Measurer] = {ord(k): _fixed(v) for k, v in fixed.items()}
    table.update({ord(k): v for k, v in special.items()})
    return table


_ESC = _table(
    {
        # no parameter
        "@": 0, "2": 0, "i": 0, "m": 0, "L": 0, "S": 0, "\x0c": 0, "v": 0, "<": 0,
        # one parameter
        "E": 1, "-": 1, "!": 1, "a": 1, "G": 1, "M": 1, "{": 1, "V": 1, "t": 1, "R": 1,
        "d": 1, "J": 1, "e": 1, "3": 1, " ": 1, "=": 1, "%": 1, "?": 1, "r": 1, "T": 1,
        "u": 1, "U": 1, "K": 1, "1": 1,
        "F": 0,  # Star Line mode: cancel emphasis (ESC/POS has no ESC F)
        "B": 2,  # ESC B n t: the buzzer of many ESC/POS printers (python-escpos, node-thermal-printer)
        "4": 1,  # ESC 4 n: italic on the printers that have it (receipt-printer-encoder)
        # two or more
        "$": 2, "\\": 2, "f": 2, "p": 3, "W": 8,
    },
    {"*": _esc_star, "D": _esc_d, "&": _esc_amp, "(": _paren, "c": _esc_c, "Z": _esc_z,
     "\x1d": _star},
)

_GS = _table(
    {
        ":": 0, "c": 0,
        "!": 1, "B": 1, "b": 1, "h": 1, "w": 1, "H": 1, "f": 1, "T": 1, "a": 1, "r": 1,
        "I": 1, "E": 1, "/": 1, "j": 1,
        "$": 2, "\\": 2, "L": 2, "W": 2, "P": 2,
        "^": 3, "z": 3, "g": 4,
        "Z": 1,  # GS Z n: select the 2D code for ESC Z (not Epson's GS ( k)
    },
    {
        "(": _paren, "8": _gs_8, "v": _raster, "Q": _raster, "k": _gs_k, "V": _gs_v_cut,
        "*": _gs_star,
    },
)

_FS = _table(
    {"&": 0, ".": 0, "!": 1, "-": 1, "C": 1, "W": 1, "S": 2, "?": 2, "p": 2},
    {"(": _paren, "q": _fs_q},
)

_DLE = _table({"\x05": 1}, {"\x04": _dle_eot, "\x14": _dle_dc4})
# DC2 q n: a request of Seiko Instruments (SII) printers that receiptline's SII command set
# sends after every job.  ESC/POS has no DC2 command: any other DC2 is a lone control byte.
_DC2 = _table({"q": 1}, {})

_PREFIXES = {ESC: ("ESC", _ESC), GS: ("GS", _GS), FS: ("FS", _FS), DLE: ("DLE", _DLE),
             DC2: ("DC2", _DC2)}
_CONTROL_NAMES = {0x04: "EOT", 0x05: "ENQ", 0x14: "DC4"}


def command_name(prefix: str, code: int,
                 control_names: dict[int, str] = _CONTROL_NAMES) -> str:
    """A command's name as the manuals write it: ``GS V``, ``DLE EOT``, ``ESC 0x80``."""
    if code in control_names:
        return f"{prefix} {control_names[code]}"
    if 0x21 <= code <= 0x7E:
        return f"{prefix} {chr(code)}"
    return f"{prefix} 0x{code:02x}"


def measure(buf: Buf, pos: int) -> Optional[Measured]:
    """The command at ``buf[pos]`` (ESC, GS, FS, DLE or DC2), or None if incomplete."""
    if _need(buf, pos, 2):
        return None
    prefix, table = _PREFIXES[buf[pos]]
    code = buf[pos + 1]
    name = command_name(prefix, code)
    measurer = table.get(code)
    if measurer is None:
        if prefix == "ESC":
            return _star(buf, pos, name)
        if prefix == "DC2":
            return Measured("DC2", 1)
        # Unknown: the printer would ignore the two bytes; so do we, and count it.
        return Measured(name, 2, known=False)
    return measurer(buf, pos, name)


def is_command_prefix(byte: int) -> bool:
    return byte in _PREFIXES
