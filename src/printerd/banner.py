"""
The start-up banner: once every listener is up, one log event says which printerd runs, where
its database is, where each listener listens, the web page's URL and the addresses a POS on the
LAN should print to (what an operator setting up a till needs to type in).
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from typing import Callable, Iterable, NamedTuple, Optional

from twisted.application.service import Service
from twisted.logger import Logger

SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


class Listening(NamedTuple):
    setting: str  # "raw_listen", "printers.kitchen", "http_listen"
    description: str  # the endpoint string as configured
    host: Optional[str]  # the address it is bound to (None: a unix socket)
    port: Optional[int]


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (Linux; empty where unknown)."""
    found: list[str] = []
    try:
        interfaces = socket.if_nameindex()
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return found
    with probe:
        for _, name in interfaces:
            try:
                reply = fcntl.ioctl(probe.fileno(), SIOCGIFADDR,
                                    struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on this interface
                continue
            address = socket.inet_ntoa(reply[20:24])
            if not ipaddress.ip_address(address).is_loopback and address not in found:
                found.append(address)
    return found


def reachable_at(listening: Listening, lan: list[str]) -> list[str]:
    """host:port strings others use to reach a listener (a listener on every interface: each
    of the ``lan`` addresses, never 0.0.0.0); a unix socket's description as it is."""
    if listening.host is None or listening.port is None:
        return [listening.description]
    if listening.host in ("0.0.0.0", "::", ""):
        hosts = lan or ["127.0.0.1"]
    else:
        hosts = [listening.host]
    return [f"[{h}]:{listening.port}" if ":" in h else f"{h}:{listening.port}" for h in hosts]


def banner_fields(version: str, database: str, listeners: Iterable[Listening],
                  lan: list[str]) -> dict:
    """What the banner says, as plain data (the log event's fields)."""
    listeners = list(listeners)
    http = [entry for entry in listeners if entry.setting == "http_listen"]
    raw = [entry for entry in listeners if entry.setting != "http_listen"]
    page = [f"http://{address}/" for entry in http for address in reachable_at(entry, lan)]
    return {
        "version": version,
        "database": database,
        "listeners": {entry.setting: f"{entry.host}:{entry.port}" if entry.port is not None
                      else entry.description for entry in listeners},
        "page": page[0] if page else None,
        "pos_addresses": {entry.setting: reachable_at(entry, lan) for entry in raw},
    }


def banner_text(fields: dict) -> str:
    listeners = ", ".join(f"{name} {where}" for name, where in fields["listeners"].items())
    pos = "; ".join(f"{name}: {', '.join(addresses)}"
                    for name, addresses in fields["pos_addresses"].items())
    return (f"printerd {fields['version']} ready: database {fields['database']}; listening: "
            f"{listeners}; web page {fields['page']}; POS print to {pos}")


class Banner(Service):
    """Logs the banner in ``startService``: add it after the listeners, it runs when they are up."""

    log = Logger()

    def __init__(self, version: str, database: str,
                 listeners: Callable[[], list[Listening]],
                 lan: Callable[[], list[str]] = lan_addresses) -> None:
        self.name = "banner"
        self.version = version
        self.database = database
        self.listeners = listeners
        self.lan = lan

    def startService(self) -> None:
        super().startService()
        fields = banner_fields(self.version, self.database, self.listeners(), self.lan())
        # The text as the format (braces escaped), the parts as the event's fields (JSON logs).
        text = banner_text(fields).replace("{", "{{").replace("}", "}}")
        self.log.info(text, **fields)
