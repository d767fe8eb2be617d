"""
POS client libraries from the npm registry (tests/node, installed by ``make setup``): the tests
print with them and feed printerd the bytes they send.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

NODE_CLIENTS = Path(__file__).resolve().parent / "node"


def receiptline_job(document: str, **printer) -> bytes:
    """The bytes receiptline sends a printer for a ReceiptLine ``document`` (its printer
    options as keywords: command="escpos", cpl=42, landscape=True ...)."""
    node = shutil.which("node")
    assert node, "Node.js is needed for the npm clients' tests"
    assert (NODE_CLIENTS / "node_modules" / "receiptline").is_dir(), \
        "tests/node/node_modules is missing: run make setup"
    done = subprocess.run([node, str(NODE_CLIENTS / "receiptline-job.js"), json.dumps(printer)],
                          input=document.encode(), capture_output=True, timeout=60, check=True)
    return done.stdout
