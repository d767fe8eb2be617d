"""IP addresses as printerd compares them: zone ids dropped, IPv4-mapped IPv6 as IPv4."""

from __future__ import annotations

import ipaddress
from typing import Iterable, Optional

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_address(text: str) -> Optional[Address]:
    """The address ``text`` names (``fe80::1%eth0``, ``::ffff:10.0.0.5`` ...), or None."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """CIDR texts (already checked by the settings) as networks."""
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


def in_networks(host: str, allowed: Iterable[Network]) -> bool:
    """Whether ``host`` is an IP address inside one of ``allowed``."""
    address = ip_address(host)
    return address is not None and any(address in network for network in allowed)
