"""Jobs from real Star client libraries (tests/star_clients, npm), and Node to run them."""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CLIENTS = Path(__file__).resolve().parent / "star_clients"


def require_node() -> str:
    """The node binary, with the client libraries installed (make setup); skip without them
    outside CI (PRINTERD_REQUIRE_NODE=1 makes their absence a failure)."""
    node = shutil.which("node")
    installed = (CLIENTS / "node_modules" / ".installed").exists()
    if node and installed:
        return node
    problem = "node is not installed" if not node else "run make setup (npm ci in tests/star_clients)"
    if os.environ.get("PRINTERD_REQUIRE_NODE") == "1":
        raise RuntimeError(f"PRINTERD_REQUIRE_NODE=1 but {problem}")
    pytest.skip(problem)


@functools.cache
def _client_jobs() -> dict[str, bytes]:
    done = subprocess.run([require_node(), str(CLIENTS / "jobs.mjs")], capture_output=True,
                          check=True, timeout=120)
    return {name: base64.b64decode(data) for name, data in json.loads(done.stdout).items()}


def client_job(name: str) -> bytes:
    """One job as the library named in ``name`` generates it (see jobs.mjs)."""
    return _client_jobs()[name]
