"""The process's own resource use, read from /proc (Linux); zeros where /proc is missing."""

from __future__ import annotations

import os
import resource


def thread_count() -> int:
    """OS threads of this process."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def rss_bytes() -> int:
    """Resident memory of this process now."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return 0
