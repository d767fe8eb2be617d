"""
Structured content of a receipt: barcodes, 2D codes, images, drawer kicks, unknown commands.

``ContentCollector.command(name, command_bytes)`` is called by the parser for each complete
command (long payloads arrive cut at the parser's capture limit); ``to_json()`` gives the lists
that go into the receipt JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from printerd.escpos.commands import STAR_PREFIX

BARCODE_TYPES = {
    0: "UPC-A", 1: "UPC-E", 2: "EAN13", 3: "EAN8", 4: "CODE39", 5: "ITF", 6: "CODABAR",
    65: "UPC-A", 66: "UPC-E", 67: "EAN13", 68: "EAN8", 69: "CODE39", 70: "ITF", 71: "CODABAR",
    72: "CODE93", 73: "CODE128", 74: "GS1-128", 75: "GS1 DataBar Omnidirectional",
    76: "GS1 DataBar Truncated", 77: "GS1 DataBar Limited", 78: "GS1 DataBar Expanded",
}
QR_MODELS = {49: "1", 50: "2", 51: "micro"}
QR_ERROR_LEVELS = {48: "L", 49: "M", 50: "Q", 51: "H"}
DIALECT_GS_Z = "GS Z / ESC Z 2D codes"
DIALECT_STAR = "Star Line mode"


def _u16(data: bytes, at: int) -> int:
    return data[at] | data[at + 1] << 8 if len(data) > at + 1 else 0


@dataclass(frozen=True)
class Bitmap:
    """An image's dots as the printer got them: ``layout`` is "raster" (rows of bytes, MSB
    leftmost, ``(width + 7) // 8`` bytes per row) or "columns" (ESC *: columns of ``height // 8``
    bytes, MSB topmost)."""

    layout: str
    width: int
    height: int
    data: bytes


class ContentCollector:
    """
    Collects one receipt's structured content; see the module docstring. ``line`` tells how many
    lines are complete (each item records where it sits among the text lines); with
    ``keep_bitmaps`` the image dots are kept in ``bitmaps`` (one entry per image, None when the
    dots are not available) for the renderers.
    """

    def __init__(self, line: Callable[[], int] = lambda: 0, keep_bitmaps: bool = False) -> None:
        self._line = line
        self._keep_bitmaps = keep_bitmaps
        self.bitmaps: list[Optional[Bitmap]] = []
        self.order: list[tuple[str, int]] = []  # ("barcodes" | "codes_2d" | "images", index)
        self.barcodes: list[dict[str, Any]] = []
        self.codes_2d: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []
        self.drawer_kicks: list[dict[str, Any]] = []
        # Plain dicts, not Counters: every receipt makes a collector, and most never count.
        self.unknown: dict[str, int] = {}
        self.dialects: dict[str, int] = {}
        self._gs_z_symbol = 2  # GS Z n: 0 PDF417, 1 DataMatrix, 2 QR (the usual default)
        self._qr: dict[str, Any] = {"model": "2", "module_size": 3, "error_correction": "L"}
        self._pdf417: dict[str, Any] = {}
        self._stored: dict[int, bytes] = {}  # cn -> symbol data waiting to be printed

    def command(self, name: str, command: bytes) -> None:
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, command)
        elif name.startswith(STAR_PREFIX):
            self.saw_dialect(DIALECT_STAR)

    def saw_dialect(self, dialect: str, count: int = 1) -> None:
        """``count`` commands of another printer language than the receipt's own."""
        self.dialects[dialect] = self.dialects.get(dialect, 0) + count

    def unknown_command(self, name: str) -> None:
        self.unknown[name] = self.unknown.get(name, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "barcodes": self.barcodes, "codes_2d": self.codes_2d,
            "images": {"count": len(self.images), "items": self.images},
            "drawer_kicks": self.drawer_kicks,
            "unknown_commands": dict(self.unknown),
            "dialects": dict(self.dialects),
        }

    # -- handlers ----------------------------------------------------------------------------

    def _barcode(self, command: bytes) -> None:
        m = command[2]
        data = command[3:-1] if m <= 6 else command[4:4 + command[3]]
        kind = BARCODE_TYPES.get(m, f"m={m}")
        if kind not in ("CODE128", "GS1-128"):
            self._add("barcodes", {"type": kind, "data": data.decode("latin-1")})
            return
        text, gs1 = decode_code128(data) if kind == "CODE128" else decode_gs1_128(data)
        # A CODE128 symbol that starts with FNC1 is a GS1-128 symbol.
        self._add("barcodes", {"type": "GS1-128" if gs1 else kind, "data": text,
                               "raw": data.decode("latin-1")})

    def _symbol(self, command: bytes) -> None:
        # GS ( k pL pH cn fn [parameters]
        if len(command) < 7:
            return
        cn, fn = command[5], command[6]
        params = self._qr if cn == 49 else self._pdf417
        if fn == 80 and len(command) >= 8:  # store the symbol data (after m)
            self._stored[cn] = command[8:]
        elif fn == 81:  # print the stored symbol
            data = self._stored.get(cn, b"")
            kind = {49: "qr", 48: "pdf417"}.get(cn, f"cn={cn}")
            self._add("codes_2d", {"type": kind, "data": data.decode("utf-8", "replace"),
                                   **params})
        elif cn == 49 and len(command) >= 8:
            if fn == 65:
                self._qr["model"] = QR_MODELS.get(command[7], str(command[7]))
            elif fn == 67:
                self._qr["module_size"] = command[7]
            elif fn == 69:
                self._qr["error_correction"] = QR_ERROR_LEVELS.get(command[7], str(command[7]))
        elif cn == 48 and len(command) >= 8:
            key = {65: "columns", 66: "rows", 67: "module_width", 68: "row_height",
                   69: "error_correction"}.get(fn)
            if key:
                self._pdf417[key] = command[8] if fn == 69 and len(command) > 8 else command[7]

    def _add(self, kind: str, item: dict[str, Any]) -> None:
        item["line"] = self._line()
        items = getattr(self, kind)
        self.order.append((kind, len(items)))
        items.append(item)

    def _image(self, item: dict[str, Any], bitmap: Optional[Bitmap]) -> None:
        self._add("images", item)
        if self._keep_bitmaps:
            # No dots to draw: an NV image, a payload cut off at the capture limit, a 0-size image.
            drawable = (bitmap is not None and bitmap.width > 0 and bitmap.height > 0
                        and len(bitmap.data) >= _bitmap_size(bitmap))
            self.bitmaps.append(bitmap if drawable else None)

    def _raster(self, command: bytes) -> None:
        # GS v 0 m xL xH yL yH: x bytes (8 dots each) per row, y rows.
        width, height = _u16(command, 4) * 8, _u16(command, 6)
        self._image({"command": "GS v 0", "width": width, "height": height},
                    Bitmap("raster", width, height, command[8:]))

    def _bit_image(self, command: bytes) -> None:
        # ESC * m nL nH: n columns, 8 or 24 dots high.
        width, height = _u16(command, 3), 24 if command[2] in (32, 33) else 8
        self._image({"command": "ESC *", "width": width, "height": height},
                    Bitmap("columns", width, height, command[5:]))

    def _graphics(self, command: bytes, header: int) -> None:
        # GS ( L / GS 8 L store raster graphics (fn 112): m fn a bx by c xL xH yL yH data.
        if len(command) > header + 9 and command[header + 1] == 112:
            width, height = _u16(command, header + 6), _u16(command, header + 8)
            self._image({"command": "GS ( L" if header == 5 else "GS 8 L",
                         "width": width, "height": height},
                        Bitmap("raster", width, height, command[header + 10:]))

    def _nv_image(self, command: bytes) -> None:
        self._image({"command": "FS p", "nv_image": command[2]}, None)

    def _gs_z(self, command: bytes) -> None:
        self._gs_z_symbol = command[2]
        self.saw_dialect(DIALECT_GS_Z)

    def _esc_z(self, command: bytes) -> None:
        # ESC Z m n k dL dH data: m version, n error level, k module size.
        kind = {0: "pdf417", 1: "datamatrix", 2: "qr"}.get(self._gs_z_symbol, "qr")
        self._add("codes_2d", {"type": kind, "data": command[7:].decode("utf-8", "replace"),
                               "dialect": "ESC Z", "module_size": command[4] or 3})
        self.saw_dialect(DIALECT_GS_Z)

    def _star(self, command: bytes) -> None:
        self.saw_dialect(DIALECT_STAR)

    def _drawer(self, command: bytes) -> None:
        # ESC p m t1 t2: pin 2 (m 0/48) or 5 (m 1/49), on t1 x 2 ms, off t2 x 2 ms.
        self.drawer_kicks.append({"pin": 5 if command[2] in (1, 49) else 2,
                                  "on_ms": command[3] * 2, "off_ms": command[4] * 2})

    def _realtime_pulse(self, command: bytes) -> None:
        # DLE DC4 1 m t: real-time pulse, t x 100 ms.
        if command[2] == 1:
            self.drawer_kicks.append({"pin": 5 if command[3] == 1 else 2,
                                      "on_ms": command[4] * 100, "off_ms": command[4] * 100})


GS1_SEPARATOR = "\x1d"  # FNC1 after the first position: GS, as a scanner sends it
_CODE_SETS = {ord("A"): "A", ord("B"): "B", ord("C"): "C"}


def _code128_char(code_set: str, byte: int) -> str:
    if code_set == "C":
        return f"{byte:02d}" if byte < 100 else "\ufffd"
    if code_set == "A":
        return chr(byte) if byte < 0x60 else "\ufffd"
    return chr(byte) if 0x20 <= byte < 0x80 else "\ufffd"


def decode_code128(data: bytes) -> tuple[str, bool]:
    """
    What a GS k CODE128 barcode encodes, as a scanner reads it, and whether it is GS1-128.

    Epson's data: "{A", "{B" or "{C" picks the code set, later "{A/B/C" switch, "{S" shifts
    A<->B for one character, "{1".."{4" are FNC1-4, "{{" is "{"; in code set C each byte 0-99
    is two digits. FNC1 first marks GS1-128 (dropped, as scanners do); later FNC1s separate
    variable-length GS1 fields (GS, 0x1D). FNC4 adds 128 to the next character; FNC2/3 are
    reader instructions and carry no data. Bytes no code set holds come out as U+FFFD.
    """
    out: list[str] = []
    code_set, shift, extend, gs1 = "B", False, False, False
    at = 0
    while at < len(data):
        byte = data[at]
        if byte == 0x7B and at + 1 < len(data):  # "{" + function
            function = data[at + 1]
            at += 2
            if function in _CODE_SETS:
                code_set = _CODE_SETS[function]
            elif function == ord("S"):
                shift = True
            elif function == ord("1"):
                if at == 2 or (at == 4 and data[0] == 0x7B and data[1] in _CODE_SETS):
                    gs1 = True
                else:
                    out.append(GS1_SEPARATOR)
            elif function == ord("4"):
                extend = True
            elif function == ord("{"):
                out.append("{")
            continue
        at += 1
        current = ("B" if code_set == "A" else "A") if shift and code_set != "C" else code_set
        char = _code128_char(current, byte)
        if extend and len(char) == 1 and char != "\ufffd":
            char = chr(ord(char) + 128)
        out.append(char)
        shift = extend = False
    return "".join(out), gs1


def decode_gs1_128(data: bytes) -> tuple[str, bool]:
    """GS k 74 (GS1-128): the printer adds the leading FNC1; "{1" separates fields."""
    return data.decode("latin-1").replace("{1", GS1_SEPARATOR).replace("{{", "{"), True


def _bitmap_size(bitmap: Bitmap) -> int:
    if bitmap.layout == "raster":
        return (bitmap.width + 7) // 8 * bitmap.height
    return bitmap.width * (bitmap.height // 8)


_HANDLERS = {
    "GS k": ContentCollector._barcode,
    "GS ( k": ContentCollector._symbol,
    "GS v 0": ContentCollector._raster,
    "ESC *": ContentCollector._bit_image,
    "GS ( L": lambda self, command: self._graphics(command, 5),
    "GS 8 L": lambda self, command: self._graphics(command, 7),
    "FS p": ContentCollector._nv_image,
    "ESC p": ContentCollector._drawer,
    "DLE DC4": ContentCollector._realtime_pulse,
    "GS Z": ContentCollector._gs_z,
    "ESC Z": ContentCollector._esc_z,
    "ESC F": ContentCollector._star,
}
