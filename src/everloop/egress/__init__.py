"""One guard for all outbound HTTP made for tenants: network access lists, SSRF rules, and the
operator's policy on internal addresses."""

from everloop.egress.addresses import IPAddress, IPNetwork, internal_reason
from everloop.egress.guard import EgressGuard, FetchResult, Resolver, system_resolver

__all__ = [
    "EgressGuard",
    "FetchResult",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "internal_reason",
    "system_resolver",
]
