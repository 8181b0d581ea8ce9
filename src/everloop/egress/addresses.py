"""Which IP addresses outbound requests may not reach unless an allowed pattern names the host.

Loopback, link-local (including the cloud metadata address 169.254.169.254), private ranges,
carrier-grade NAT, unspecified, multicast and reserved addresses, and their IPv6 equivalents.
An IPv4-mapped or NAT64-embedded IPv6 address is judged by the IPv4 address inside it.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_EXTRA_V4 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def internal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is internal (``"loopback"``, ``"private"``...), or ``None`` if public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return internal_reason(embedded)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and any(address in n for n in _EXTRA_V4):
        return "private"
    if address.is_private or address.is_reserved or not address.is_global:
        return "private"
    return None
