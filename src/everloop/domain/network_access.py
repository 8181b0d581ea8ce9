"""Network access lists: which URLs a session's outbound requests may reach.

A layer (harness, agent, session) carries ``{"allowed": [...], "blocked": [...]}`` patterns:

- ``example.com``: that host exactly;
- ``*.example.com``: any subdomain of ``example.com`` (not ``example.com`` itself);
- ``https://host/path/``: URLs starting with that scheme, host, port and path.

Hosts and schemes match case-insensitively, paths case-sensitively for ``allowed`` patterns (so
``https://h/public/`` does not admit ``/PUBLIC/x``) and case-insensitively for ``blocked`` ones
(a server that ignores case must not serve a blocked path under another spelling). Paths are
compared after decoding percent-encoded unreserved characters (``%70ublic`` is ``public``).
URLs whose paths could mean another path to the server are refused before any matching by the
egress guard (:func:`smuggled_dot_segment`, :func:`has_encoded_slash`). Blocked wins over
allowed. A layer with no ``allowed`` entries does not restrict. Layers merge narrow-only
(:func:`merge_network_access`): ``allowed`` lists intersect, ``blocked`` lists add up. The egress
guard (``everloop.egress``) enforces the result, under the operator's policy on internal
addresses that no layer can widen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import SplitResult, unquote, urlsplit

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
        allowed = tuple(normal_pattern(p) for p in value.get("allowed") or () if p.strip())
        blocked = tuple(normal_pattern(p) for p in value.get("blocked") or () if p.strip())
        return cls(allowed or None, blocked)

    def verdict(self, url: str) -> Verdict:
        """``blocked`` (a blocked pattern matches), ``not_allowed`` (an allowed list exists and
        nothing in it matches), ``allowed`` (an allowed pattern matches: the URL was named
        explicitly) or ``open`` (no allowed list)."""
        if any(pattern_matches(p, url, fold_path_case=True) for p in self.blocked):
            return "blocked"
        if self.allowed is None:
            return "open"
        if any(pattern_matches(p, url) for p in self.allowed):
            return "allowed"
        return "not_allowed"

    def names_host(self, host: str) -> bool:
        """Whether an allowed pattern names ``host`` explicitly (exact, ``*.`` or URL prefix):
        required, beside the operator's allowance, to reach an internal address."""
        host = host.lower().strip("[]")
        for pattern in self.allowed or ():
            if "://" in pattern:
                if (urlsplit(pattern).hostname or "") == host:
                    return True
            elif _host_matches(pattern, host):
                return True
        return False

    def has_path_rules(self, url: str) -> bool:
        """Whether an allowed or blocked pattern with a path below ``/`` has the origin of
        ``url``: then the path decides, and an encoded slash in it is refused."""
        parts = urlsplit(url)
        rules = [urlsplit(p) for p in (*(self.allowed or ()), *self.blocked) if "://" in p]
        return any((want.path or "/") != "/" and _same_origin(want, parts) for want in rules)


OPEN_NETWORK = NetworkAccess()


def normal_pattern(pattern: str) -> str:
    """A pattern as it is matched: trimmed; host patterns lower-cased; URL patterns with the
    scheme and host lower-cased and the path's unreserved escapes decoded (its case kept)."""
    pattern = pattern.strip()
    if "://" not in pattern:
        return pattern.lower()
    scheme, rest = pattern.split("://", 1)
    authority, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{authority.lower()}{normal_path(slash + path)}"


def pattern_matches(pattern: str, url: str, *, fold_path_case: bool = False) -> bool:
    """Whether one pattern matches ``url``: hosts and schemes case-insensitively, paths
    case-sensitively unless ``fold_path_case`` (for blocked patterns)."""
    pattern = normal_pattern(pattern)
    parts = urlsplit(url)
    if "://" in pattern:
        want = urlsplit(pattern)
        if not _same_origin(want, parts):
            return False
        path, prefix = normal_path(parts.path), want.path or "/"
        if fold_path_case:
            path, prefix = path.lower(), prefix.lower()
        return path.startswith(prefix)
    return _host_matches(pattern, parts.hostname or "")


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def normal_path(path: str) -> str:
    """``path`` with escapes of unreserved characters decoded (RFC 3986 6.2.2.2: ``%7E`` is
    ``~``) and the other escapes in upper case, so equal paths compare equal."""

    def one(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _ESCAPE.sub(one, path) or "/"


def smuggled_dot_segment(path: str) -> bool:
    """Whether ``path`` (as sent, without the query) holds a ``.`` or ``..`` segment once decoded
    and split at ``/`` and ``\\``: ``%2e%2e``, ``.%2E``, ``..%2f``, ``..\\``. A parsed URL has no
    literal dot segments left, so any found here would be resolved by the server, not by us."""
    return any(part in (".", "..") for part in re.split(r"[/\\]", unquote(path)))


def has_encoded_slash(path: str) -> bool:
    """Whether ``path`` holds ``%2F`` or ``%5C``: one path segment to us, maybe two to a server."""
    lowered = path.lower()
    return "%2f" in lowered or "%5c" in lowered


def _host_matches(pattern: str, host: str) -> bool:
    host = host.lower().strip("[]").rstrip(".")
    pattern = pattern.strip("[]").rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _same_origin(want: SplitResult, parts: SplitResult) -> bool:
    if want.scheme != parts.scheme.lower() or (want.hostname or "") != (parts.hostname or ""):
        return False
    return _port(want.scheme, want.port) == _port(parts.scheme.lower(), parts.port)


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
