"""How many connections wait in a listening TCP socket's accept queue (Linux's /proc/net/tcp)."""

from __future__ import annotations

from typing import Optional

from twisted.internet.interfaces import IListeningPort

TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN = "0A"  # the socket state column for LISTEN


def backlog_length(port: Optional[IListeningPort], tables: tuple[str, ...] = TCP_TABLES) -> int:
    """
    Connections waiting in the listening port's accept queue (Linux only, else 0).

    For a socket in LISTEN state, /proc/net/tcp reports the accept queue length as rx_queue.
    """
    if port is None:
        return 0
    local_port = getattr(port.getHost(), "port", None)
    if local_port is None:
        return 0
    waiting = 0
    for table in tables:
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                        waiting += int(fields[4].split(":")[1], 16)
        except OSError:
            continue
    return waiting
