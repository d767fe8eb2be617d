"""
JSON as printerd stores and sends it: compact, through one encoder built once (``json.dumps``
with ``separators`` builds a new encoder on every call, and the raw port encodes every
receipt's details).
"""

from __future__ import annotations

import json
from typing import Any

_ENCODER = json.JSONEncoder(separators=(",", ":"))


def compact_json(value: Any) -> str:
    return _ENCODER.encode(value)
