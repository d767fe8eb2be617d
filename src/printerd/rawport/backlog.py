"""How many connections wait in a listening TCP socket's accept queue (Linux's /proc/net/tcp)."""

from __future__ import annotations

from typing import Optional

from twisted.internet.address import IPv6Address
from twisted.internet.interfaces import IListeningPort

TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN = "0A"  # the socket state column for LISTEN


def backlog_length(port: Optional[IListeningPort], tcp: str = TCP_TABLES[0],
                   tcp6: str = TCP_TABLES[1]) -> int:
    """
    Connections waiting in the listening port's accept queue (Linux only, else 0).

    For a socket in LISTEN state, /proc/net/tcp reports the accept queue length as rx_queue.
    The tables hold every connection and TIME_WAIT of the machine, tens of thousands of lines
    on a busy one (a whole read took 180 ms there), and /api/stats asks often: only the table
    of the port's family is read, and only its first lines, since the kernel lists listening
    sockets before all others.
    """
    if port is None:
        return 0
    address = port.getHost()
    local_port = getattr(address, "port", None)
    if local_port is None:
        return 0
    waiting = 0
    try:
        with open(tcp6 if isinstance(address, IPv6Address) else tcp) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] != LISTEN:
                    break
                if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                    waiting += int(fields[4].split(":")[1], 16)
    except OSError:
        return 0
    return waiting
