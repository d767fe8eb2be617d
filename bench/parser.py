"""Parser scenario: MB/s of the pure JobParser on text-heavy, image-heavy and sample jobs."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from printerd.escpos.parser import JobParser

from bench.ingest import receipt_bytes

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "escpos-samples"


def text_job() -> bytes:
    return b"".join(receipt_bytes(0, n) for n in range(2000))  # about 3 MB of receipts


def image_job() -> bytes:
    # 576-dot wide raster images (72 bytes per row), 2000 rows each, between short text.
    image = b"\x1dv0\x00" + (72).to_bytes(2, "little") + (2000).to_bytes(2, "little")
    image += bytes(range(256)) * (72 * 2000 // 256) + bytes(72 * 2000 % 256)
    return b"".join(b"Logo %d\n" % n + image + b"\n\x1dV\x00" for n in range(20))


def sample_job() -> bytes:
    return b"".join(path.read_bytes() for path in sorted(SAMPLES.glob("*.bin")))


def throughput(data: bytes, chunk: int = 65536, repeats: int = 5) -> float:
    """Median MB/s over ``repeats`` runs, fed in ``chunk``-byte pieces like a socket."""
    rates = []
    for _ in range(repeats):
        parser = JobParser()
        started = time.perf_counter()
        for i in range(0, len(data), chunk):
            parser.feed(data[i:i + chunk])
        parser.close()
        rates.append(len(data) / (time.perf_counter() - started) / 1e6)
    return round(statistics.median(rates), 1)


def run(workdir=None) -> dict:
    jobs = {"text": text_job(), "image": image_job(), "samples": sample_job()}
    return {f"{name}_mb_per_s": throughput(data) for name, data in jobs.items()} | {
        f"{name}_bytes": len(data) for name, data in jobs.items()}
