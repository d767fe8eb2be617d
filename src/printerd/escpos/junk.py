"""
Spotting connections that are plainly another protocol (port scanners, misdirected browsers):
an HTTP request line, a TLS ClientHello, an SSH banner.  ESC/POS jobs never start like these;
a job that starts with a status query or any ESC/POS byte is accepted at once.
"""

from __future__ import annotations

import re
from typing import Optional

NEED_MORE = "need-more"
MAX_PREFIX = 512  # an HTTP request line must end within this many bytes

_HTTP_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ",
                 b"PATCH ", b"TRACE ", b"PRI ")
_HTTP_LINE = re.compile(rb"^[A-Z]+ \S+ HTTP/\d")


def classify(prefix: bytes) -> Optional[str]:
    """The foreign protocol ``prefix`` starts, None if it is a print job, or NEED_MORE."""
    if prefix[:1] == b"\x16":  # TLS handshake record: 16 03 0x
        if len(prefix) < 3:
            return NEED_MORE
        return "tls" if prefix[1] == 0x03 and prefix[2] <= 0x04 else None
    if b"SSH-".startswith(prefix[:4]):
        return "ssh" if prefix.startswith(b"SSH-") else NEED_MORE
    if any(m.startswith(prefix[:len(m)]) for m in _HTTP_METHODS):
        # Only a whole request line ("GET / HTTP/1.1") counts: a receipt may start "GET READY".
        line_end = prefix.find(b"\n")
        if line_end < 0:
            return NEED_MORE if len(prefix) < MAX_PREFIX else None
        return "http" if _HTTP_LINE.match(prefix[:line_end]) else None
    return None
