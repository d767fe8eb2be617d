"""
Structured content of a Star receipt: barcodes, QR and PDF417 codes, images, drawer kicks, in
the same lists (and the same receipt JSON) as ESC/POS receipts.

Images of every Star form (ESC K / L / X / k bit images, StarPRNT ESC GS S raster images, and
raster mode rows) are kept as raster rows.  Bands printed one after another with nothing
between them (a logo sent in 24-dot strips, a raster-mode page row by row) make one image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from printerd.escpos.content import Bitmap, ContentCollector

DIALECT_ESCPOS = "ESC/POS"

# ESC b n1: the symbology (binary 0-13, or ASCII "0".."=").
STAR_BARCODE_TYPES = {
    0: "UPC-E", 1: "UPC-A", 2: "EAN8", 3: "EAN13", 4: "CODE39", 5: "ITF", 6: "CODE128",
    7: "CODE93", 8: "CODABAR", 9: "GS1-128", 10: "GS1 DataBar Omnidirectional",
    11: "GS1 DataBar Truncated", 12: "GS1 DataBar Limited", 13: "GS1 DataBar Expanded",
}
STAR_QR_LEVELS = {0: "L", 1: "M", 2: "Q", 3: "H"}

# The most dot data one image keeps for the renderers; a larger one is counted, not drawn.
MAX_IMAGE_BYTES = 8 * 1024 * 1024


def digit(n: int) -> int:
    """Star parameters come as binary values or as ASCII digits: "0" is 0."""
    return n - 0x30 if 0x30 <= n <= 0x3F else n


@dataclass
class _ImageBuilder:
    """One image being received, band by band."""

    command: str
    item: dict[str, Any]
    index: int
    keep: bool
    width: int = 0
    rows: list[bytes] = field(default_factory=list)
    size: int = 0
    drawable: bool = True

    def add(self, width: int, height: int, rows: Optional[list[bytes]]) -> None:
        self.width = max(self.width, width)
        self.item["width"] = self.width
        self.item["height"] = self.item.get("height", 0) + height
        if not self.keep:
            return
        if rows is None or len(rows) != height:
            self.drawable = False
        if not self.drawable or rows is None:
            return
        self.size += sum(map(len, rows))
        if self.size > MAX_IMAGE_BYTES:
            self.drawable, self.rows = False, []
            return
        self.rows += rows

    def bitmap(self) -> Optional[Bitmap]:
        if not (self.drawable and self.width and self.rows):
            return None
        row_bytes = (self.width + 7) // 8
        data = b"".join(row[:row_bytes].ljust(row_bytes, b"\x00") for row in self.rows)
        return Bitmap("raster", self.width, len(self.rows), data)


class StarContent(ContentCollector):
    """The ContentCollector of a Star receipt; the parser calls the methods below."""

    def __init__(self, line: Callable[[], int] = lambda: 0, keep_bitmaps: bool = False) -> None:
        super().__init__(line, keep_bitmaps)
        self._qr = {"model": "2", "module_size": 3, "error_correction": "L"}
        self._qr_data = b""
        self._pdf417: dict[str, Any] = {}
        self._pdf417_data = b""
        self._building: Optional[_ImageBuilder] = None

    def foreign(self, count: int = 1) -> None:
        """An ESC/POS command in a Star job: recognised, skipped, reported."""
        self.saw_dialect(DIALECT_ESCPOS, count)

    # -- barcodes and 2D codes ---------------------------------------------------------------

    def barcode(self, command: bytes) -> None:
        # ESC b n1 n2 n3 n4 d1 .. dk RS: n1 symbology, n2 text and feed, n3 width, n4 height.
        kind = digit(command[2])
        self._add("barcodes", {"type": STAR_BARCODE_TYPES.get(kind, f"n1={command[2]}"),
                               "data": command[6:-1].decode("latin-1")})

    def qr(self, command: bytes) -> bool:
        """ESC GS y ...; True when it printed a symbol."""
        letter = command[3]
        if letter == ord("S"):
            setting, n = command[4], command[5]
            if setting in (0, 0x30):
                self._qr["model"] = str(digit(n))
            elif setting in (1, 0x31):
                self._qr["error_correction"] = STAR_QR_LEVELS.get(digit(n), str(n))
            elif setting in (2, 0x32):
                self._qr["module_size"] = digit(n)
        elif letter == ord("D"):
            self._qr_data = command[8:]
        elif letter == ord("P") and self._qr_data:  # with no data stored nothing prints
            self._add("codes_2d", {"type": "qr", "data": self._qr_data.decode("utf-8", "replace"),
                                   **self._qr})
            return True
        return False

    def pdf417(self, command: bytes) -> bool:
        """ESC GS x ...; True when it printed a symbol."""
        letter = command[3]
        if letter == ord("S"):
            setting = command[4]
            if setting in (0, 0x30):
                # n = 1: p1 rows and p2 columns (0: automatic); n = 0: p1 : p2 is the aspect.
                if digit(command[5]) == 1:
                    self._pdf417.update(rows=command[6], columns=command[7])
                else:
                    self._pdf417["aspect"] = f"{command[6]}:{command[7]}"
            elif setting in (1, 0x31):
                self._pdf417["error_correction"] = digit(command[5])
            elif setting in (2, 0x32):
                self._pdf417["module_width"] = digit(command[5])
            elif setting in (3, 0x33):
                self._pdf417["row_height"] = digit(command[5])
        elif letter == ord("D"):
            self._pdf417_data = command[6:]
        elif letter == ord("P") and self._pdf417_data:
            self._add("codes_2d", {"type": "pdf417",
                                   "data": self._pdf417_data.decode("utf-8", "replace"),
                                   **self._pdf417})
            return True
        return False

    # -- images ------------------------------------------------------------------------------

    def image_band(self, command: str, width: int, height: int,
                   rows: Optional[list[bytes]], extend: bool) -> None:
        """
        A band of dots ``width`` wide and ``height`` high (``rows``: raster rows, MSB leftmost;
        None when the dots are not all here).  ``extend``: it follows the previous band with
        nothing printed between, so it continues the same image.
        """
        builder = self._building
        if not (extend and builder is not None and builder.command == command):
            self.end_image()
            item: dict[str, Any] = {"command": command}
            self._add("images", item)
            builder = self._building = _ImageBuilder(command, item, len(self.images) - 1,
                                                  self._keep_bitmaps)
            if self._keep_bitmaps:
                self.bitmaps.append(None)
        builder.add(width, height, rows)

    def end_image(self) -> None:
        """The image being received is complete: hand its dots to the renderers."""
        builder, self._building = self._building, None
        if builder is not None and self._keep_bitmaps:
            self.bitmaps[builder.index] = builder.bitmap()

    def logo(self, number: int) -> None:
        self.end_image()
        self._add("images", {"command": "ESC FS p", "nv_image": number})
        if self._keep_bitmaps:
            self.bitmaps.append(None)

    # -- drawers -----------------------------------------------------------------------------

    def drawer(self, pin: int, on_ms: int, off_ms: int) -> None:
        # BEL / FS drive external device 1 (drawer pin 2), SUB / EM device 2 (pin 5).
        self.drawer_kicks.append({"pin": pin, "on_ms": on_ms, "off_ms": off_ms})

    def to_json(self) -> dict[str, Any]:
        self.end_image()
        return super().to_json()


def columns_to_rows(data: bytes, columns: int, dots: int, scale_x: int = 1,
                    scale_y: int = 1) -> list[bytes]:
    """
    Column bit image data (each column ``dots`` // 8 bytes, MSB topmost) as raster rows,
    each dot drawn ``scale_x`` wide and ``scale_y`` high.
    """
    per_column = dots // 8
    rows = []
    for y in range(dots):
        byte, bit = divmod(y, 8)
        mask = 0x80 >> bit
        bits = "".join(("1" if data[c * per_column + byte] & mask else "0") * scale_x
                       for c in range(columns))
        width = columns * scale_x
        value = int(bits, 2) << (-width % 8) if width else 0
        row = value.to_bytes((width + 7) // 8, "big")
        rows += [row] * scale_y
    return rows


def raster_rows(data: bytes, row_bytes: int, rows: int) -> list[bytes]:
    return [data[i * row_bytes:(i + 1) * row_bytes] for i in range(rows)]
