"""
POS client libraries from the npm registry (tests/node, installed by ``make setup``): the tests
print with them, read status with them, and feed printerd the bytes they send.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_CLIENTS = Path(__file__).resolve().parent / "node"


def require_node() -> str:
    """The node binary, with the client libraries installed (make setup); skip without them
    outside CI (PRINTERD_REQUIRE_NODE=1 makes their absence a failure)."""
    node = shutil.which("node")
    installed = (NODE_CLIENTS / "node_modules" / ".package-lock.json").exists()
    if node and installed:
        return node
    problem = ("Node.js is not installed (apt-get install nodejs npm)" if not node
               else "tests/node/node_modules is missing: run make setup")
    if os.environ.get("PRINTERD_REQUIRE_NODE") == "1":
        raise RuntimeError(f"PRINTERD_REQUIRE_NODE=1 but {problem}")
    pytest.skip(problem)


def receiptline_job(document: str, **printer) -> bytes:
    """The bytes receiptline sends a printer for a ReceiptLine ``document`` (its printer
    options as keywords: command="escpos", cpl=42, landscape=True ...)."""
    done = subprocess.run(
        [require_node(), str(NODE_CLIENTS / "receiptline-job.js"), json.dumps(printer)],
        input=document.encode(), capture_output=True, timeout=60, check=True)
    return done.stdout


# A Japanese receipt (kanji, full- and half-width kana, a "¥" column), and its lines as a
# Japanese model stores them, their column padding squeezed to one space (``squeezed_lines``).
JAPANESE_RECEIPT = "^^領収書\n店名: 東京ラーメン | ¥1,200\nﾗｰﾒﾝ 2 | ¥2,400\n"
JAPANESE_LINES = ["領収書", "店名: 東京ラーメン ¥1,200", "ﾗｰﾒﾝ 2 ¥2,400"]


def japanese_job(command: str) -> bytes:
    """receiptline's bytes for ``JAPANESE_RECEIPT`` in Shift JIS (``command``: escpos,
    starmbcs ...), as it prints for a Japanese model."""
    return receiptline_job(JAPANESE_RECEIPT, command=command, cpl=42, encoding="shiftjis")


def squeezed_lines(text: str) -> list[str]:
    """``text``'s lines with their runs of spaces (column padding) as one space."""
    return [" ".join(line.split()) for line in text.splitlines()]


@functools.cache
def _star_jobs() -> dict[str, bytes]:
    done = subprocess.run([require_node(), str(NODE_CLIENTS / "star-jobs.mjs")],
                          capture_output=True, check=True, timeout=120)
    return {name: base64.b64decode(data) for name, data in json.loads(done.stdout).items()}


def client_job(name: str) -> bytes:
    """One Star job as the library named in ``name`` generates it (see star-jobs.mjs)."""
    return _star_jobs()[name]
