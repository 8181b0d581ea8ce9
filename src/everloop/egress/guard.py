"""The egress guard: every outbound HTTP request of a session goes through here.

Two checks, both on every request and on every redirect hop:

1. The URL: the scheme (http/https only), a path that means one thing to us and to the server
   (no encoded dot segments; no encoded slashes where a path pattern decides), then the
   session's effective ``NetworkAccess`` (blocked wins; an allowed list that does not match
   refuses).
2. The connection: the host is resolved by the guard's resolver and *every* address is
   checked. An internal address (``addresses.internal_reason``) is refused unless the operator
   allows its network (``allowed_private_networks``, from
   ``EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS``) *and* an allowed pattern of the session names
   the host: tenants can narrow the operator's policy, never widen it. The socket is then
   opened to a checked address. The connection is pinned: TLS SNI, certificate checks and the
   ``Host`` header keep the original name, but no second DNS lookup can swap in another
   address (DNS rebinding).

Every refusal is an ``EgressDenied`` whose ``reason`` says which rule refused.

``EgressGuard.client`` gives an ``httpx.AsyncClient`` that applies both checks (for MCP and any
later user); ``EgressGuard.fetch`` is a one-shot GET/POST with manual redirects and a byte cap.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpcore
import httpx

from everloop.domain.network_access import (
    NetworkAccess,
    has_encoded_slash,
    smuggled_dot_segment,
)
from everloop.egress.addresses import IPAddress, IPNetwork, internal_reason, within
from everloop.errors import EgressDenied

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
"""Resolve a host name to its addresses (``host, port -> addresses``); injectable for tests."""

_REDIRECTS = (301, 302, 303, 307, 308)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The operating system's resolver (``getaddrinfo``), without blocking the event loop."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EgressDenied(f"cannot resolve host '{host}'", reason="unresolvable") from exc
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A response read by ``EgressGuard.fetch``; ``body`` holds at most ``max_bytes``."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip("\"' ")
        return None


class EgressGuard:
    """Enforces network access and SSRF rules for outbound HTTP; one per process.

    ``allowed_private_networks`` is the operator's policy: the internal networks that a
    session naming a host there may reach (none by default).
    """

    def __init__(
        self,
        *,
        allowed_private_networks: typing.Sequence[IPNetwork] = (),
        resolver: Resolver = system_resolver,
        timeout_seconds: float = 20.0,
        max_redirects: int = 5,
        user_agent: str = "everloop",
    ) -> None:
        self._private_networks = tuple(allowed_private_networks)
        self._resolver = resolver
        self._timeout = timeout_seconds
        self._max_redirects = max_redirects
        self._user_agent = user_agent

    def check_url(self, url: str, access: NetworkAccess) -> httpx.URL:
        """The parsed URL if ``access`` lets a request go to it, else ``EgressDenied``."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise EgressDenied(f"invalid URL: {url!r}", reason="invalid_url") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise EgressDenied(
                f"only http and https URLs with a host can be fetched: {url!r}",
                reason="invalid_url",
            )
        if parsed.userinfo:
            raise EgressDenied("URLs with credentials are not fetched", reason="invalid_url")
        _check_path(parsed, access)
        verdict = access.verdict(str(parsed))
        if verdict == "blocked":
            raise EgressDenied(
                f"{parsed} is blocked by the session's network access", reason="blocked"
            )
        if verdict == "not_allowed":
            raise EgressDenied(
                f"{parsed} is not in the session's allowed network access", reason="not_allowed"
            )
        return parsed

    async def resolve_checked(self, host: str, port: int, access: NetworkAccess) -> list[IPAddress]:
        """The addresses of ``host``, each one checked; refuses if any is internal, unless the
        operator allows its network and an allowed pattern of ``access`` names the host."""
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            addresses = await self._resolver(host, port)
        if not addresses:
            raise EgressDenied(f"cannot resolve host '{host}'", reason="unresolvable")
        for address in addresses:
            kind = internal_reason(address)
            if kind is None:
                continue
            if not within(address, self._private_networks):
                raise EgressDenied(
                    f"{host} resolves to a {kind} address ({address}), which the operator's "
                    "egress policy does not allow",
                    reason="private_address",
                )
            if not access.names_host(host):
                raise EgressDenied(
                    f"{host} resolves to a {kind} address ({address}); only an allowed "
                    "network access pattern naming the host can reach it",
                    reason="private_address_not_named",
                )
        return addresses

    def client(self, access: NetworkAccess, **kwargs: typing.Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` whose every request (and redirect hop) passes both checks.

        Environment proxies are ignored (a proxy would resolve names itself). Extra keyword
        arguments go to ``httpx.AsyncClient`` (headers, timeout, ...), except ``transport``.
        """
        kwargs.setdefault("timeout", self._timeout)
        kwargs.setdefault("headers", {"user-agent": self._user_agent})
        return httpx.AsyncClient(
            transport=_GuardedTransport(self, access), trust_env=False, **kwargs
        )

    async def fetch(
        self,
        url: str,
        access: NetworkAccess,
        *,
        method: str = "GET",
        max_bytes: int = 2 * 1024 * 1024,
        headers: Mapping[str, str] | None = None,
    ) -> FetchResult:
        """One request, following up to ``max_redirects`` redirects (each re-checked); the body
        is read up to ``max_bytes`` (``truncated`` tells whether there was more)."""
        current = str(self.check_url(url, access))
        async with self.client(access, follow_redirects=False) as client:
            for _ in range(self._max_redirects + 1):
                request = client.build_request(method, current, headers=headers)
                try:
                    response = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise EgressDenied(
                        f"request to {request.url.host} failed: {type(exc).__name__}",
                        reason="request_failed",
                    ) from exc
                try:
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        target = response.url.join(response.headers["location"])
                        current = str(self.check_url(str(target), access))
                        if response.status_code == 303:
                            method = "GET"
                        continue
                    body, truncated = await _read_capped(response, max_bytes)
                    return FetchResult(
                        url=str(response.url),
                        status=response.status_code,
                        headers=dict(response.headers),
                        body=body,
                        truncated=truncated,
                    )
                finally:
                    await response.aclose()
        raise EgressDenied(
            f"more than {self._max_redirects} redirects", reason="too_many_redirects"
        )


def _check_path(url: httpx.URL, access: NetworkAccess) -> None:
    """Refuse a path that the server could read as another path than the one matched: encoded
    dot segments always, encoded slashes where a path pattern of ``access`` decides."""
    path = url.raw_path.split(b"?", 1)[0].decode("ascii", errors="replace")
    if smuggled_dot_segment(path):
        raise EgressDenied(
            f"{url} has an encoded or backslashed dot segment in its path",
            reason="encoded_dot_segment",
        )
    if has_encoded_slash(path) and access.has_path_rules(str(url)):
        raise EgressDenied(
            f"{url} has an encoded slash in a path that network access patterns decide on",
            reason="encoded_slash",
        )


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                return b"".join(chunks)[:max_bytes], True
    except httpx.HTTPError as exc:
        raise EgressDenied(
            f"reading the response failed: {type(exc).__name__}", reason="request_failed"
        ) from exc
    return b"".join(chunks), False


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the URL check per request and a pinning network backend."""

    def __init__(self, guard: EgressGuard, access: NetworkAccess) -> None:
        super().__init__(trust_env=False)
        self._guard = guard
        self._access = access
        # Rebuild the pool httpx made with our network backend; httpx has no parameter for it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_PinningBackend(guard, access),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._guard.check_url(str(request.url), self._access)
        return await super().handle_async_request(request)


class _PinningBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks the host itself, then connects to the checked address."""

    def __init__(self, guard: EgressGuard, access: NetworkAccess) -> None:
        self._guard = guard
        self._access = access
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.resolve_checked(host, port, self._access)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressDenied(
            "unix sockets are not reachable through the egress guard", reason="invalid_url"
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
