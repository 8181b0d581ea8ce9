"""Builds the SDK-based model drivers, reusing SDK clients and one injected HTTP client.

Creating an SDK client costs milliseconds (TLS context, connection pool), so clients are kept per
(event loop, SDK, base URL, key, timeout) and shared by every driver built for that endpoint. A
connection pool belongs to the event loop that opened it, hence the per-loop keying. The SDKs'
own retries are off: the turn runner owns the retry policy (``ModelCallError.retryable``).

openai 3.x and anthropic 2.x are built on ``httpx2``: that is the client injected here.

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

import httpx2

from everloop.llm.base import ModelDriver
from everloop.llm.options import DriverOptions, Endpoint, SdkDriverKind

if TYPE_CHECKING:
    import anthropic
    import openai

# The SDKs refuse to start without a key; a local OpenAI-compatible server often needs none.
_NO_KEY = "not-set"


@dataclass
class _LoopClients:
    http: httpx2.AsyncClient
    openai: dict[tuple[str | None, str, float], openai.AsyncOpenAI] = field(default_factory=dict)
    anthropic: dict[tuple[str | None, str, float], anthropic.AsyncAnthropic] = field(
        default_factory=dict
    )


class SdkDrivers:
    """The factory of ``openai``, ``openai_completions`` and ``anthropic`` drivers."""

    def __init__(self) -> None:
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
                http_client=clients.http,
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
                http_client=clients.http,
            )
            clients.anthropic[key] = client
        return client

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (others go with their loops)."""
        loop = asyncio.get_running_loop()
        clients = self._by_loop.pop(loop, None)
        if clients is not None:
            await clients.http.aclose()

    def _clients(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        clients = self._by_loop.get(loop)
        if clients is None:
            http = httpx2.AsyncClient(
                limits=httpx2.Limits(max_connections=200, max_keepalive_connections=50),
                follow_redirects=False,
            )
            clients = _LoopClients(http)
            self._by_loop[loop] = clients
        return clients


def load_sdks() -> None:
    """Import the SDKs and their drivers now (blocking: call it in a thread)."""
    import everloop.llm.anthropic
    import everloop.llm.openai_chat
    import everloop.llm.openai_responses  # noqa: F401


def _digest(api_key: str | None) -> str:
    """Clients are keyed by a digest of the key, so the key is not kept twice."""
    return hashlib.sha256((api_key or "").encode()).hexdigest()
