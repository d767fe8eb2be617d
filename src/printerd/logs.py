"""
Log output for log shippers: ``twistd --logger=printerd.logs.json_stdout printerd ...``
writes one JSON object per line to standard output instead of twistd's text lines.
"""

from __future__ import annotations

import sys

from twisted.logger import ILogObserver, jsonFileLogObserver


def json_stdout() -> ILogObserver:
    """twistd ``--logger`` factory: JSON lines on stdout (twistd calls it with no arguments)."""
    return jsonFileLogObserver(sys.stdout)
