"""
What OCR costs per receipt: ``python -m bench.ocr_cost [--receipts N]``.

Starts the daemon with ``ocr = true``, prints N raster receipts through ePOS-Print as Odoo
prints them (the whole receipt one 512-dot image), waits until OCR has read every one, and
prints the CPU and wall seconds per receipt that the daemon measured (tesseract's CPU time from
getrusage, and the wall time of each run), with the OCR's own ingest figures. Needs Debian's
tesseract-ocr and the test extra (epos-print-xml).
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import time
from pathlib import Path

import barcode
from PIL import Image as PillowImage
from PIL import ImageDraw, ImageFont

from bench.daemon import Daemon

LINES = ["CAFE DU PORT", "12 Quai des Brumes", "", "Espresso          2.50",
         "Croissant         1.80", "Orange juice      3.90", "", "TOTAL             8.20",
         "Thank you for your visit"]


def raster_receipt(width: int = 512, lines: list[str] = LINES) -> tuple[int, int, bytes]:
    """A receipt drawn as a print driver rasterises one: rows of bytes, 1 for a black dot."""
    font = ImageFont.truetype(str(Path(barcode.__file__).parent / "fonts" /
                                  "DejaVuSansMono.ttf"), 28)
    height = 40 * len(lines) + 60
    image = PillowImage.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((16, 30 + 40 * n), line, font=font, fill=0)
    mono = image.point(lambda value: 0 if value < 128 else 255).convert("1")
    # Pillow's "1" mode packs 1 for white; a printer's raster has 1 for a black dot.
    return width, height, bytes(byte ^ 0xFF for byte in mono.tobytes())


def main() -> None:
    from src.epos.document import EposDocument
    from src.epos.elements import Cut, Image
    from src.epos.printer import Printer

    parser = argparse.ArgumentParser(prog="python -m bench.ocr_cost")
    parser.add_argument("--receipts", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        daemon = Daemon(Path(folder), "--ocr")
        try:
            printer = Printer(f"127.0.0.1:{daemon.http_port}", request_timeout=60)
            started = time.monotonic()
            for n in range(args.receipts):
                width, height, dots = raster_receipt(lines=LINES + [f"Order {n}"])
                document = EposDocument()
                document.add_body(Image(width=width, height=height,
                                        text=base64.b64encode(dots).decode()))
                document.add_body(Cut())
                assert printer.print(document, autocut=False).success
            ingest = time.monotonic() - started
            stats = daemon.wait_for(lambda: (lambda s: s if s["ocr_read_total"] == args.receipts
                                             else None)(daemon.get("/api/stats")[1]),
                                    timeout=60 * args.receipts)
            read = stats["ocr_read_total"]
            print(json.dumps({
                "receipts": read, "image": "512 x %d dots" % height,
                "cpu_s_per_receipt": round(stats["ocr_cpu_seconds_total"] / read, 3),
                "wall_s_per_receipt": round(stats["ocr_wall_seconds_total"] / read, 3),
                "ingest_s_for_all": round(ingest, 3), "threads": stats["threads"],
                "sample_ocr_text": daemon.get("/api/receipts?limit=1")[1]["receipts"][0]
                ["ocr_text"]}, indent=2))
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
