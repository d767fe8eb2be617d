"""
File descriptors: raise the process's limit at start, and share the descriptors out.

Every connection costs a descriptor.  When a process runs out, ``accept`` fails on every port
at once: one peer holding connections on the raw port would stop the API too.  So printerd
raises its soft ``RLIMIT_NOFILE`` to the hard limit at start (1,024 is a common soft default,
far below what a printer port under attack needs), and splits what it has: a reserve that no
connection may take (the database and its WAL, logs, the reactor, a new accept), then half of
the rest for the raw printer ports and half for HTTP.  Each side stops accepting at its share
rather than running the process out.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Callable

from twisted.logger import Logger

log = Logger()

# An unlimited hard limit (macOS; never on Linux, where fs.nr_open caps it) is taken as this.
UNLIMITED = 1 << 20
MIN_RESERVE = 64


def raise_open_file_limit(
    getrlimit: Callable[[int], tuple[int, int]] = resource.getrlimit,
    setrlimit: Callable[[int, tuple[int, int]], None] = resource.setrlimit,
) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return UNLIMITED if soft == resource.RLIM_INFINITY else soft
    try:
        setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as e:
        log.warn("cannot raise the open file limit from {soft} to {target}: {error}",
                 soft=soft, target=target, error=e)
        return soft
    log.info("open file limit raised from {soft} to {target}", soft=soft, target=target)
    return target


def open_file_limit(getrlimit: Callable[[int], tuple[int, int]] = resource.getrlimit) -> int:
    """The soft RLIMIT_NOFILE in force (an unlimited one as ``UNLIMITED``)."""
    soft, _ = getrlimit(resource.RLIMIT_NOFILE)
    return UNLIMITED if soft == resource.RLIM_INFINITY else soft


@dataclass(frozen=True)
class DescriptorBudget:
    """How many descriptors each kind of connection may hold; see the module docstring."""

    limit: int  # the soft RLIMIT_NOFILE
    reserve: int  # never handed to connections
    raw: int  # connections on the raw printer ports, all printers together
    http: int  # HTTP connections

    @classmethod
    def for_limit(cls, limit: int) -> DescriptorBudget:
        reserve = max(MIN_RESERVE, limit // 8)
        connections = max(0, limit - reserve)
        return cls(limit=limit, reserve=reserve, raw=connections // 2,
                   http=connections - connections // 2)
