"""Which IP addresses are internal, and the operator's list of internal networks tenants may use.

Internal: loopback, link-local (including the cloud metadata address 169.254.169.254), private
ranges, carrier-grade NAT, unspecified, multicast and reserved addresses, and their IPv6
equivalents. An IPv4-mapped, 6to4 or NAT64-embedded IPv6 address is judged by the IPv4 address
inside it. No outbound request made for a tenant reaches one unless the operator lists its
network (``EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS``: ``Settings.egress_private_networks``).
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

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
    embedded = _embedded_v4(address)
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


def within(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether ``address`` (or the IPv4 address embedded in it) is in one of ``networks``."""
    candidates = [address]
    embedded = _embedded_v4(address)
    if embedded is not None:
        candidates.append(embedded)
    return any(a.version == n.version and a in n for a in candidates for n in networks)


def _embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is None and address in _NAT64:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return embedded
