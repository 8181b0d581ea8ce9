"""One guard for all outbound HTTP of everloop: network access lists and SSRF rules."""

from everloop.egress.addresses import IPAddress, internal_reason
from everloop.egress.guard import EgressGuard, FetchResult, Resolver, system_resolver

__all__ = [
    "EgressGuard",
    "FetchResult",
    "IPAddress",
    "Resolver",
    "internal_reason",
    "system_resolver",
]
