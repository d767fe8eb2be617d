"""Render scenario: milliseconds per receipt for the text, HTML and PNG renderers (medians)."""

from __future__ import annotations

import statistics
import time

from printerd.render.document import parse_receipt
from printerd.render.html import render_html
from printerd.render.png import render_png
from printerd.render.text import render_text

from bench.parser import SAMPLES

RECEIPTS = {  # a store receipt with a logo, many QR codes, many barcodes
    "logo_receipt": "escpos-php__receipt-with-logo.bin",
    "qr_codes": "escpos-php__qr-code.bin",
    "barcodes": "escpos-php__barcode.bin",
}
RENDERERS = {
    "txt": lambda raw: render_text(raw, 48),
    "html": lambda raw: render_html(raw, 48),
    "png": lambda raw: render_png(raw, 576),
}


def first_receipt(name: str) -> bytes:
    """The raw bytes of a sample's first receipt, as the store keeps them."""
    receipt = parse_receipt((SAMPLES / name).read_bytes())
    assert receipt is not None, name
    return receipt.raw


def median_ms(render, raw: bytes, repeats: int = 15) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        render(raw)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def run(workdir=None) -> dict:
    result = {}
    for label, name in RECEIPTS.items():
        raw = first_receipt(name)
        for fmt, render in RENDERERS.items():
            result[f"{label}_{fmt}_ms"] = median_ms(render, raw)
    return result
