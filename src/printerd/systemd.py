"""
systemd's notify protocol (``Type=notify``), without a dependency: a datagram to the unix socket
named by ``NOTIFY_SOCKET``. ``READY=1`` once the listeners are up (so ``systemctl start``
returns when a POS can print), ``WATCHDOG=1`` every half ``WatchdogSec`` from the reactor (a
wedged reactor stops them and systemd restarts the service), ``STOPPING=1`` on shutdown.
Outside systemd (no ``NOTIFY_SOCKET``) it does nothing.
"""

from __future__ import annotations

import os
import socket
from typing import Mapping, Optional

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from printerd.periodic import PeriodicJob


def notify_address(environ: Mapping[str, str]) -> Optional[str]:
    """The socket to notify, from ``NOTIFY_SOCKET`` (``@name``: the abstract namespace)."""
    address = environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        return "\0" + address[1:]
    return address if address.startswith("/") else None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> Optional[float]:
    """Seconds between ``WATCHDOG=1`` pings (half the watchdog timeout), or None: no watchdog."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    watched_pid = environ.get("WATCHDOG_PID")
    if usec <= 0 or (watched_pid and watched_pid != str(pid)):
        return None  # the watchdog is meant for another process
    return usec / 2_000_000


def send_notification(address: str, message: str) -> None:
    """One datagram; never blocks (a full queue loses a message, it does not stall the reactor)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(message.encode(), socket.MSG_DONTWAIT, address)


class SystemdNotifier(MultiService):
    """Tells systemd ready, alive and stopping; add it after the listeners (see module doc)."""

    log = Logger()

    def __init__(self, clock: IReactorTime, environ: Mapping[str, str],
                 pid: Optional[int] = None, status: str = "") -> None:
        super().__init__()
        self.name = "systemd-notify"
        self.address = notify_address(environ)
        self.status = status
        pid = os.getpid() if pid is None else pid
        interval = watchdog_interval(environ, pid) if self.address else None
        if interval is not None:
            PeriodicJob("systemd watchdog", clock, interval,
                        lambda: self._send("WATCHDOG=1")).setServiceParent(self)

    def startService(self) -> None:
        self._send("READY=1" + (f"\nSTATUS={self.status}" if self.status else ""))
        super().startService()

    def stopService(self) -> Deferred[None]:
        self._send("STOPPING=1")
        return super().stopService()

    def _send(self, message: str) -> None:
        if self.address is None:
            return
        try:
            send_notification(self.address, message)
        except OSError as e:
            self.log.warn("cannot notify systemd at {address}: {error}",
                          address=self.address.replace("\0", "@"), error=e)
