"""
The client behind a trusted reverse proxy (Cloudflare Tunnel, nginx, a load balancer).

Behind a proxy every request comes from the proxy's address, so rate limits and logs would
treat all visitors as one.  For a peer in ``trusted_proxies`` (CIDR list; none by default),
the client is the address the proxy reports: ``CF-Connecting-IP``, else the last ``for=`` of
``Forwarded`` or the last address of ``X-Forwarded-For`` that is not itself a trusted proxy
(earlier entries are whatever the client claimed, so they are not believed).  Its
``X-Forwarded-Proto: https`` means the browser used HTTPS.  From any other peer these headers
are ignored: a stranger cannot pick its own address.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Callable, Iterable, Optional

from printerd.addresses import ip_address

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HeaderReader = Callable[[bytes], Optional[bytes]]  # request.getHeader


def parse_address(text: str) -> Optional[Address]:
    """An IP address from a header item: brackets, ports, quotes and zones taken off."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4 address with a port
        text = text.split(":", 1)[0]
    return ip_address(text)


_FOR = re.compile(r'(?:^|[;,\s])for=("[^"]*"|[^;,\s]*)', re.IGNORECASE)


class TrustedProxies:
    """Resolves a request's client address; see the module docstring."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks)

    def trusts(self, peer: Optional[Address]) -> bool:
        return peer is not None and any(peer in network for network in self.networks)

    def client(self, peer_host: str, header: HeaderReader) -> str:
        """The client's address: ``peer_host`` itself unless the peer is a trusted proxy."""
        peer = parse_address(peer_host)
        if not self.trusts(peer):
            return peer_host
        found = self._reported(header)
        return str(found) if found is not None else peer_host

    def _reported(self, header: HeaderReader) -> Optional[Address]:
        cloudflare = header(b"cf-connecting-ip")
        if cloudflare is not None:
            address = parse_address(cloudflare.decode("latin-1"))
            if address is not None:
                return address
        forwarded = header(b"forwarded")
        if forwarded is not None:
            chain = [parse_address(m.group(1)) for m in _FOR.finditer(forwarded.decode("latin-1"))]
            found = self._last_untrusted(chain)
            if found is not None:
                return found
        x_forwarded_for = header(b"x-forwarded-for")
        if x_forwarded_for is not None:
            chain = [parse_address(item) for item in x_forwarded_for.decode("latin-1").split(",")]
            return self._last_untrusted(chain)
        return None

    def _last_untrusted(self, chain: list[Optional[Address]]) -> Optional[Address]:
        # Each proxy appends the address it saw: walk back past our own proxies.
        for address in reversed(chain):
            if address is None:
                return None  # garbage where an address should be: believe nothing further
            if not self.trusts(address):
                return address
        return chain[0] if chain else None

    def forwarded_https(self, peer_host: str, header: HeaderReader) -> bool:
        """Whether a trusted proxy says the browser reached it over HTTPS."""
        if not self.trusts(parse_address(peer_host)):
            return False
        proto = header(b"x-forwarded-proto")
        if proto is not None:  # the last value is the one our own proxy set
            return proto.decode("latin-1").split(",")[-1].strip().lower() == "https"
        forwarded = header(b"forwarded")
        return forwarded is not None and re.search(
            rb'(?:^|[;,\s])proto="?https"?(?:$|[;,\s])', forwarded, re.IGNORECASE) is not None

