"""Builds the SDK-based model drivers, reusing SDK clients and one injected HTTP client.

Creating an SDK client costs milliseconds (TLS context, connection pool), so clients are kept per
(event loop, SDK, base URL, key, timeout) and shared by every driver built for that endpoint. A
connection pool belongs to the event loop that opened it, hence the per-loop keying. The SDKs'
own retries are off: the turn runner owns the retry policy (``ModelCallError.retryable``).

openai 3.x and anthropic 2.x are built on ``httpx2``: that is the client injected here, one per
(event loop, base URL), made by the egress guard. A provider's ``base_url`` is set by a tenant, so
it gets no more than ``web_fetch`` does: internal addresses only where the operator's
``EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS`` allows them (the base URL names its host, as an
allowed network access pattern would), DNS pinned. Without a base URL the SDK's own public host
is used, through the same guard.

The SDKs take a second or more to import, so they load on first use (``build``), not with this
module: a server that never calls an SDK model does not pay for them, and ``everloop serve``
loads them in a thread after it starts (``load_sdks``) so that no request waits for the import.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx2

from everloop.domain.network_access import OPEN_NETWORK, NetworkAccess
from everloop.egress import EgressGuard
from everloop.egress.httpx2_client import guarded_httpx2_client
from everloop.llm.base import ModelDriver
from everloop.llm.options import DriverOptions, Endpoint, SdkDriverKind

if TYPE_CHECKING:
    import anthropic
    import openai

# The SDKs refuse to start without a key; a local OpenAI-compatible server often needs none.
_NO_KEY = "not-set"
_LIMITS = httpx2.Limits(max_connections=200, max_keepalive_connections=50)


@dataclass
class _LoopClients:
    http: dict[str | None, httpx2.AsyncClient] = field(default_factory=dict)
    openai: dict[tuple[str | None, str, float], openai.AsyncOpenAI] = field(default_factory=dict)
    anthropic: dict[tuple[str | None, str, float], anthropic.AsyncAnthropic] = field(
        default_factory=dict
    )


class SdkDrivers:
    """The factory of ``openai``, ``openai_completions`` and ``anthropic`` drivers."""

    def __init__(self, guard: EgressGuard) -> None:
        self._guard = guard
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
            weakref.WeakKeyDictionary()
        )

    def build(
        self, kind: SdkDriverKind, model: str, endpoint: Endpoint, options: DriverOptions
    ) -> ModelDriver:
        """A driver for ``model``; its SDK client is created on the first call, in that loop."""
        from everloop.llm.anthropic import AnthropicDriver
        from everloop.llm.openai_chat import OpenAIChatDriver
        from everloop.llm.openai_responses import OpenAIResponsesDriver

        match kind:
            case "openai":
                return OpenAIResponsesDriver(
                    lambda: self.openai_client(endpoint, options.timeout_seconds), model, options
                )
            case "openai_completions":
                return OpenAIChatDriver(
                    lambda: self.openai_client(endpoint, options.timeout_seconds), model, options
                )
            case "anthropic":
                return AnthropicDriver(
                    lambda: self.anthropic_client(endpoint, options.timeout_seconds),
                    model,
                    options,
                )

    def openai_client(self, endpoint: Endpoint, timeout: float) -> openai.AsyncOpenAI:
        clients = self._clients()
        key = (endpoint.base_url, _digest(endpoint.api_key), timeout)
        client = clients.openai.get(key)
        if client is None:
            import openai

            client = openai.AsyncOpenAI(
                api_key=endpoint.api_key or _NO_KEY,
                base_url=endpoint.base_url,
                timeout=timeout,
                max_retries=0,
                http_client=self._http(clients, endpoint.base_url),
            )
            clients.openai[key] = client
        return client

    def anthropic_client(self, endpoint: Endpoint, timeout: float) -> anthropic.AsyncAnthropic:
        clients = self._clients()
        key = (endpoint.base_url, _digest(endpoint.api_key), timeout)
        client = clients.anthropic.get(key)
        if client is None:
            import anthropic

            client = anthropic.AsyncAnthropic(
                api_key=endpoint.api_key or _NO_KEY,
                base_url=endpoint.base_url,
                timeout=timeout,
                max_retries=0,
                http_client=self._http(clients, endpoint.base_url),
            )
            clients.anthropic[key] = client
        return client

    async def aclose(self) -> None:
        """Close the HTTP clients of the running loop (others go with their loops)."""
        loop = asyncio.get_running_loop()
        clients = self._by_loop.pop(loop, None)
        if clients is not None:
            for http in clients.http.values():
                await http.aclose()

    def _clients(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        clients = self._by_loop.get(loop)
        if clients is None:
            clients = _LoopClients()
            self._by_loop[loop] = clients
        return clients

    def _http(self, clients: _LoopClients, base_url: str | None) -> httpx2.AsyncClient:
        """The guarded HTTP client of ``base_url`` in this loop, made on first use."""
        http = clients.http.get(base_url)
        if http is None:
            access = _endpoint_access(base_url)
            http = guarded_httpx2_client(
                self._guard, access, limits=_LIMITS, follow_redirects=False
            )
            clients.http[base_url] = http
        return http


def load_sdks() -> None:
    """Import the SDKs and their drivers now (blocking: call it in a thread)."""
    import everloop.llm.anthropic
    import everloop.llm.openai_chat
    import everloop.llm.openai_responses  # noqa: F401


def _endpoint_access(base_url: str | None) -> NetworkAccess:
    """What a provider's requests may reach: the origin of its base URL (which names the host,
    so an operator-allowed internal address can be used), or any public host without one."""
    if base_url is None:
        return OPEN_NETWORK
    parts = urlsplit(base_url)
    return NetworkAccess.from_json({"allowed": [f"{parts.scheme}://{parts.netloc}/"]})


def _digest(api_key: str | None) -> str:
    """Clients are keyed by a digest of the key, so the key is not kept twice."""
    return hashlib.sha256((api_key or "").encode()).hexdigest()
