"""
Which ``Host`` names the API answers to: the defence against DNS rebinding.

A web page the operator visits can rebind its own name to 127.0.0.1; the browser then sends
that page's requests to printerd with the page's name as ``Host``.  So printerd answers only
requests whose ``Host`` is a loopback name or address, the address the connection arrived at
(which is the listener's own address), or a name the operator listed in
``http_allowed_hosts`` (``*`` turns the check off).  A request without ``Host`` (HTTP/1.0)
cannot come from a browser and is answered.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Optional

from printerd.addresses import ip_address

LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
KNOWN_HOSTS = 256  # Host headers whose answers are remembered


def host_name(header: bytes) -> Optional[str]:
    """The name or address in a Host header, lower case, without port or brackets."""
    try:
        text = header.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return None
    if text.startswith("["):  # [v6 address]:port
        end = text.find("]")
        return text[1:end] if end > 0 else None
    name, _, port = text.partition(":")
    if port and not port.isdigit():
        return None  # two colons without brackets, or a port that is not a number
    return name.rstrip(".")


class AllowedHosts:
    """``allows(host_header, local_address)``: see the module docstring."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        listed = {name.strip().lower().rstrip(".") for name in names if name.strip()}
        self.any = "*" in listed
        self.names = frozenset(listed - {"*"})
        # The answers for the few Host headers an API sees, so that each request does not
        # parse an address again (bounded, the least recently used forgotten).
        self._known = lru_cache(maxsize=KNOWN_HOSTS)(self._allows)

    def allows(self, header: Optional[bytes], local_address: Optional[str]) -> bool:
        if self.any or header is None:
            return True
        return self._known(header, local_address)

    @property
    def remembered(self) -> int:
        """How many Host headers' answers are remembered (at most KNOWN_HOSTS)."""
        return self._known.cache_info().currsize

    def _allows(self, header: bytes, local_address: Optional[str]) -> bool:
        name = host_name(header)
        if not name:
            return False
        if name in self.names or name in LOOPBACK_NAMES or name.endswith(".localhost"):
            return True
        address = ip_address(name)
        if address is None:
            return False
        # Addresses this printerd has: loopback, or the one this connection came in on.
        return address.is_loopback or (local_address is not None
                                       and address == ip_address(local_address))
