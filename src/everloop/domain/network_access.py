"""Network access lists: which URLs a session's outbound requests may reach.

A layer (harness, agent, session) carries ``{"allowed": [...], "blocked": [...]}`` patterns:

- ``example.com``: that host exactly;
- ``*.example.com``: any subdomain of ``example.com`` (not ``example.com`` itself);
- ``https://host/path/``: URLs starting with that scheme, host, port and path.

Matching is case-insensitive and blocked wins over allowed. A layer with no ``allowed`` entries
does not restrict. Layers merge narrow-only (:func:`merge_network_access`): ``allowed`` lists
intersect, ``blocked`` lists add up. The egress guard (``everloop.egress``) enforces the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

Verdict = Literal["blocked", "not_allowed", "allowed", "open"]


@dataclass(frozen=True, slots=True)
class NetworkAccess:
    """An effective access list. ``allowed is None`` means no layer restricted (open);
    an empty tuple means layers restricted to disjoint sets, so nothing is allowed."""

    allowed: tuple[str, ...] | None = None
    blocked: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> NetworkAccess:
        """One layer in its wire form; an empty ``allowed`` list is open."""
        if not value:
            return OPEN_NETWORK
        allowed = tuple(p.strip().lower() for p in value.get("allowed") or () if p.strip())
        blocked = tuple(p.strip().lower() for p in value.get("blocked") or () if p.strip())
        return cls(allowed or None, blocked)

    def verdict(self, url: str) -> Verdict:
        """``blocked`` (a blocked pattern matches), ``not_allowed`` (an allowed list exists and
        nothing in it matches), ``allowed`` (an allowed pattern matches: the URL was named
        explicitly) or ``open`` (no allowed list)."""
        if any(pattern_matches(p, url) for p in self.blocked):
            return "blocked"
        if self.allowed is None:
            return "open"
        if any(pattern_matches(p, url) for p in self.allowed):
            return "allowed"
        return "not_allowed"

    def names_host(self, host: str) -> bool:
        """Whether an allowed pattern names ``host`` explicitly (exact, ``*.`` or URL prefix):
        the only way a private or loopback address may be reached."""
        host = host.lower().strip("[]")
        for pattern in self.allowed or ():
            if "://" in pattern:
                if (urlsplit(pattern).hostname or "") == host:
                    return True
            elif _host_matches(pattern, host):
                return True
        return False


OPEN_NETWORK = NetworkAccess()


def pattern_matches(pattern: str, url: str) -> bool:
    """Whether one pattern matches ``url`` (both compared case-insensitively)."""
    pattern = pattern.lower()
    parts = urlsplit(url.lower())
    if "://" in pattern:
        return _prefix_matches(pattern, parts.scheme, parts.hostname or "", parts.port, url.lower())
    return _host_matches(pattern, parts.hostname or "")


def _host_matches(pattern: str, host: str) -> bool:
    host = host.strip("[]").rstrip(".")
    pattern = pattern.strip("[]").rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _prefix_matches(pattern: str, scheme: str, host: str, port: int | None, url: str) -> bool:
    want = urlsplit(pattern)
    if want.scheme != scheme or (want.hostname or "") != host:
        return False
    if _port(want.scheme, want.port) != _port(scheme, port):
        return False
    return (urlsplit(url).path or "/").startswith(want.path or "/")


def _port(scheme: str, port: int | None) -> int | None:
    if port is not None:
        return port
    return {"http": 80, "https": 443}.get(scheme)


def _covered(child: str, parent: str) -> bool:
    """Whether everything ``child`` allows is also allowed by ``parent``."""
    if child == parent:
        return True
    if "://" in child:
        if "://" in parent:
            return pattern_matches(parent, child)
        return _host_matches(parent, urlsplit(child).hostname or "")
    if "://" in parent:
        return False
    if parent.startswith("*."):
        host = child[2:] if child.startswith("*.") else child
        return _host_matches(parent, host) or (child.startswith("*.") and host == parent[2:])
    return False


def merge_network_access(*layers: Mapping[str, Any] | None) -> NetworkAccess:
    """Fold layers (harness, agent, session, outermost first) into the effective list.

    ``allowed``: a layer without entries inherits; otherwise only entries covered by both the
    list so far and the layer's are kept (so a layer can only narrow). ``blocked``: the union.
    """
    allowed: tuple[str, ...] | None = None
    blocked: list[str] = []
    for layer in layers:
        access = NetworkAccess.from_json(layer)
        blocked.extend(p for p in access.blocked if p not in blocked)
        if access.allowed is None:
            continue
        if allowed is None:
            allowed = access.allowed
            continue
        kept = [c for c in access.allowed if any(_covered(c, p) for p in allowed)]
        kept += [
            p for p in allowed if p not in kept and any(_covered(p, c) for c in access.allowed)
        ]
        allowed = tuple(kept)
    return NetworkAccess(allowed, tuple(blocked))
