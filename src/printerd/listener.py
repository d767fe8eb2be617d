"""
A service that listens on a Twisted endpoint string and keeps the listening port.

Like ``StreamServerEndpointService``, but it exposes the port (the raw port's admission
pauses it), reports whether it is listening (health), and turns "address already in use" into
one line naming the setting instead of a traceback.  Printer ports get a listen backlog that
fits a burst (``with_backlog``).
"""

from __future__ import annotations

import re
import sys
from typing import Callable, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IAddress, IListeningPort, IProtocolFactory, IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from printerd.banner import Listening

# Endpoint kinds whose string takes a listen backlog (Twisted's own default is 50).
BACKLOG_KINDS = ("tcp", "tcp6", "unix", "ssl")
MIN_BACKLOG = 1024
SOMAXCONN = "/proc/sys/net/core/somaxconn"


def default_backlog(somaxconn: str = SOMAXCONN) -> int:
    """
    The listen backlog for printer ports: 1,024, or the kernel's cap on accept queues if it is
    larger (Linux).  Twisted's 50 made a burst of POS connections meet resets.
    """
    try:
        with open(somaxconn) as f:
            return max(MIN_BACKLOG, int(f.read()))
    except (OSError, ValueError):
        return MIN_BACKLOG


def with_backlog(description: str, backlog: int) -> str:
    """An endpoint string with ``backlog=`` added, if its kind takes one and it gives none."""
    parts = re.split(r"(?<!\\):", description)
    if parts[0].lower() not in BACKLOG_KINDS:
        return description
    if any(part.startswith("backlog=") for part in parts[1:]):
        return description
    return f"{description}:backlog={backlog}"


class ListenFailed(SystemExit):
    """The daemon cannot listen where it was told to: a configuration error, exit code 1."""


class RefusedAddress(Exception):
    """The address bound is not one this listener may serve on (the check's reason)."""


class ListenerService(Service):
    """Listens on an endpoint with a factory; see the module docstring."""

    log = Logger()

    def __init__(self, setting: str, description: str, endpoint: IStreamServerEndpoint,
                 factory: IProtocolFactory,
                 on_listening: Optional[Callable[[IListeningPort], None]] = None,
                 check: Optional[Callable[[IAddress], Optional[str]]] = None) -> None:
        """
        ``check``: given the address actually bound, a reason not to serve there (or None);
        with a reason the daemon stops before serving anything, as when it cannot listen.
        """
        self.name = setting
        self.setting = setting
        self.description = description
        self.endpoint = endpoint
        self.factory = factory
        self.port: Optional[IListeningPort] = None
        self._on_listening = on_listening
        self._check = check
        self._listening: Optional[Deferred[IListeningPort]] = None

    @property
    def listening(self) -> bool:
        return self.port is not None

    def bound(self) -> Listening:
        """Where it listens (host and port None while it does not), for the banner and API."""
        address = self.port.getHost() if self.port is not None else None
        return Listening(self.setting, self.description, getattr(address, "host", None),
                         getattr(address, "port", None))

    def privilegedStartService(self) -> None:
        # Listening here (before twistd drops privileges) allows ports below 1024.
        super().privilegedStartService()
        failures: list[Failure] = []
        self._listening = self.endpoint.listen(self.factory)
        # The errback also takes what _listened raises (an address the check refused).
        self._listening.addCallback(self._listened).addErrback(failures.append)
        if failures:
            failure = failures[0]
            self._fail(str(failure.value) if failure.check(RefusedAddress) else
                       f"cannot listen on {self.description}: {failure.getErrorMessage()}")

    def _fail(self, problem: str) -> None:
        message = f"printerd: error: {self.setting}: {problem}"
        # twistd redirects sys.stderr into its log: the line goes to both the log and
        # the real stderr, so an operator sees it however the daemon was started.
        self.log.critical("{message}", message=message)
        print(message, file=sys.__stderr__)
        raise ListenFailed(1)

    def startService(self) -> None:
        if self._listening is None:
            self.privilegedStartService()
        super().startService()

    def _listened(self, port: IListeningPort) -> IListeningPort:
        problem = self._check(port.getHost()) if self._check is not None else None
        if problem is not None:
            port.stopListening()
            raise RefusedAddress(problem)
        self.port = port
        self.log.info("{setting} listening on {address}", setting=self.setting,
                      address=port.getHost())
        if self._on_listening is not None:
            self._on_listening(port)
        return port

    def stopService(self) -> Deferred[None]:
        super().stopService()
        port, self.port, self._listening = self.port, None, None
        if port is None:
            return succeed(None)
        stopped = port.stopListening()
        return stopped if stopped is not None else succeed(None)
