"""The egress guard for SDKs built on ``httpx2`` (the ``mcp`` 2.x client).

``httpx2`` is a fork of ``httpx`` with the same transport design but its own classes, so the
guard's ``httpx`` client cannot be handed to such an SDK. This module applies the very same two
checks with ``httpx2``'s classes: the URL of every request (and so of every redirect hop) against
the session's network access, and a pinning network backend that resolves and checks the host
through ``EgressGuard.resolve_checked`` and then connects to a checked address only.
"""

from __future__ import annotations

import typing

import httpcore2
import httpx2

from everloop.domain.network_access import NetworkAccess
from everloop.egress.guard import EgressGuard
from everloop.errors import EgressDenied

_DEFAULT_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)


def guarded_httpx2_client(
    guard: EgressGuard,
    access: NetworkAccess,
    *,
    limits: httpx2.Limits | None = None,
    **kwargs: typing.Any,
) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` whose every request passes the guard's checks.

    Environment proxies are ignored (a proxy would resolve names itself). ``limits`` sizes the
    connection pool (httpx2's transport default if omitted). Other keyword arguments go to
    ``httpx2.AsyncClient`` (headers, timeout, ...), except ``transport``.
    """
    transport = _GuardedTransport(guard, access, limits or _DEFAULT_LIMITS)
    return httpx2.AsyncClient(transport=transport, trust_env=False, **kwargs)


class _GuardedTransport(httpx2.AsyncHTTPTransport):
    def __init__(self, guard: EgressGuard, access: NetworkAccess, limits: httpx2.Limits) -> None:
        super().__init__(trust_env=False)
        self._guard = guard
        self._access = access
        # Rebuild the pool with our network backend; httpx2 has no parameter for it.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinningBackend(guard, access),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self._guard.check_url(str(request.url), self._access)
        return await super().handle_async_request(request)


class _PinningBackend(httpcore2.AsyncNetworkBackend):
    """Resolves and checks the host through the guard, then connects to a checked address."""

    def __init__(self, guard: EgressGuard, access: NetworkAccess) -> None:
        self._guard = guard
        self._access = access
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        addresses = await self._guard.resolve_checked(host, port, self._access)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise EgressDenied(
            "unix sockets are not reachable through the egress guard", reason="invalid_url"
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
