"""MCP tools: remote tools of MCP servers, discovered per turn and called like any other tool.

The servers of a turn are the registered ones its capability list names (``mcp:{id}``, opened
by an :class:`McpServerDirectory`) plus its assembled ``mcpServers`` map (``domain.mcp``).
Discovery lists each server's tools when a turn starts; listings are cached per server
configuration (``McpServerSpec.config_key``: id, name, URL and headers) for ``cache_seconds``,
so a changed server is listed again at once (the session context report reads the same cache,
``McpToolset.listings``). A server that cannot be listed contributes no tools
to a new turn; a call to a server that went away is a tool error naming it, and the next call
connects again (every operation opens its own connection, so there is no stale session to heal).

Every connection goes through the egress guard (``egress.httpx2_client``): the session's network
access, the SSRF rules and the operator's egress policy apply to the MCP URL, with DNS pinning.

Durability: a tool whose annotations declare ``readOnlyHint`` or ``idempotentHint`` is
``SideEffect.IDEMPOTENT`` (a call interrupted by a crash runs again); any other is
``SideEffect.AT_MOST_ONCE``: the runner commits that such a call started before making it, and
settles a call interrupted by a crash as ``in_doubt`` instead of repeating it (``engine.act``).

The ``mcp`` SDK loads on first use (a third of a second of imports), not with this module;
``everloop serve`` loads it in a thread after it starts (``load_sdk``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

import httpx2

from everloop.capabilities.base import SideEffect, Tool, ToolContext, ToolError
from everloop.domain.mcp import McpServerSpec, scoped_specs, server_id_of_ref, tool_name
from everloop.domain.messages import JsonObject, JsonValue
from everloop.domain.network_access import NetworkAccess
from everloop.domain.runtime_agent import RuntimeAgent
from everloop.egress import EgressGuard
from everloop.egress.httpx2_client import guarded_httpx2_client
from everloop.errors import EgressDenied

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult, ToolAnnotations

log = logging.getLogger("everloop.mcp")
_T = TypeVar("_T")

DEFAULT_CACHE_SECONDS = 24 * 3600
_ANY_OBJECT: JsonObject = {"type": "object"}


class McpServerDirectory(Protocol):
    """The registered servers of an org, and the sealed headers of scoped ones
    (``services.mcp_servers.McpServerService``)."""

    async def specs(self, org_id: str, server_ids: Sequence[str]) -> list[McpServerSpec]: ...

    def scoped_headers(
        self, org_id: str, name: str, entry: Mapping[str, Any]
    ) -> Mapping[str, str]: ...


class McpUnavailable(Exception):
    """A server could not be reached or refused us (connection, egress guard, protocol)."""


def load_sdk() -> None:
    """Import the ``mcp`` SDK now (blocking: call it in a thread)."""
    import mcp.client.streamable_http
    import mcp.shared.exceptions  # noqa: F401


@dataclass(frozen=True, slots=True)
class RemoteTool:
    """A tool as a server lists it."""

    name: str
    description: str
    input_schema: JsonObject
    side_effect: SideEffect


def side_effect_of_hints(hints: ToolAnnotations | None) -> SideEffect:
    """A remote tool is safe to repeat only when it says so: read-only, or idempotent (MCP
    annotations are hints; a tool that gives none may change anything, once per call)."""
    if hints is not None and (hints.read_only_hint or hints.idempotent_hint):
        return SideEffect.IDEMPOTENT
    return SideEffect.AT_MOST_ONCE


class McpConnector:
    """Opens MCP client sessions (the official ``mcp`` SDK over streamable HTTP) through the
    egress guard: the SDK takes an injected ``httpx2`` client, and ours pins and checks every
    connection. One connection per operation; failures become :class:`McpUnavailable`."""

    def __init__(
        self, guard: EgressGuard, *, timeout_seconds: float, call_timeout_seconds: float
    ) -> None:
        self._guard = guard
        self._timeout = timeout_seconds
        self._call_timeout = call_timeout_seconds

    async def list_tools(self, spec: McpServerSpec, access: NetworkAccess) -> list[RemoteTool]:
        async def run(client: Client) -> list[RemoteTool]:
            found: list[RemoteTool] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                for tool in page.tools:
                    found.append(
                        RemoteTool(
                            name=tool.name,
                            description=tool.description or tool.title or "",
                            input_schema=dict(tool.input_schema) or dict(_ANY_OBJECT),
                            side_effect=side_effect_of_hints(tool.annotations),
                        )
                    )
                cursor = page.next_cursor
                if not cursor:
                    return found

        return await self._run(spec, access, self._timeout, run)

    async def call_tool(
        self, spec: McpServerSpec, access: NetworkAccess, name: str, arguments: JsonObject
    ) -> CallToolResult:
        async def run(client: Client) -> CallToolResult:
            return await client.call_tool(name, dict(arguments))

        return await self._run(spec, access, self._call_timeout, run)

    async def _run(
        self,
        spec: McpServerSpec,
        access: NetworkAccess,
        timeout: float,
        run: Callable[[Client], Awaitable[_T]],
    ) -> _T:
        """Connect, ``run(client)`` within ``timeout``, disconnect."""
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        try:
            async with (
                guarded_httpx2_client(
                    self._guard,
                    access,
                    headers=dict(spec.headers),
                    timeout=httpx2.Timeout(self._timeout, read=timeout),
                ) as http,
                Client(streamable_http_client(spec.url, http_client=http)) as client,
            ):
                async with asyncio.timeout(timeout):
                    return await run(client)
        except (Exception, BaseExceptionGroup) as exc:
            raise McpUnavailable(_explain(exc, timeout)) from exc


def _explain(exc: BaseException, timeout: float) -> str:
    """One line on why an MCP operation failed (the SDK raises through task groups)."""
    from mcp.shared.exceptions import MCPError

    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, EgressDenied):
        return exc.summary
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, MCPError):
        return f"the server answered with an error: {exc.error.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass(frozen=True, slots=True)
class McpTool:
    """One remote tool as a ``Tool``: the model calls it ``mcp_{server}__{tool}``."""

    name: str
    description: str
    parameters: JsonObject
    remote_name: str
    spec: McpServerSpec
    connector: McpConnector = field(repr=False)
    side_effect: SideEffect = SideEffect.AT_MOST_ONCE

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        # ``{{secret:NAME}}`` placeholders become values here, in what is sent, and nowhere else.
        sent = context.resolve_secrets(arguments)
        assert isinstance(sent, dict)
        try:
            result = await self.connector.call_tool(
                self.spec, context.network_access, self.remote_name, sent
            )
        except McpUnavailable as exc:
            raise ToolError(
                f"MCP server '{self.spec.name}' is unreachable: {exc}. The next call to it will "
                "connect again."
            ) from exc
        if result.is_error:
            raise ToolError(_text(result) or f"MCP tool '{self.remote_name}' failed")
        return _value(result)


@dataclass(frozen=True, slots=True)
class _UnreachableTool:
    """Stands in for the tools of a server that could not be listed: every call says so."""

    name: str
    server: str
    reason: str
    description: str = ""
    side_effect: ClassVar[SideEffect] = SideEffect.PURE  # it only reports an error
    parameters: JsonObject = field(default_factory=lambda: dict(_ANY_OBJECT))

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        raise ToolError(
            f"MCP server '{self.server}' is unreachable: {self.reason}. The next call to it "
            "will connect again."
        )


def _text(result: CallToolResult) -> str:
    from mcp.types import TextContent

    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def _value(result: CallToolResult) -> JsonValue:
    """The structured content when the tool gives one, else its text, else the content parts."""
    if result.structured_content is not None:
        structured: JsonValue = json.loads(json.dumps(result.structured_content))
        return structured
    from mcp.types import TextContent

    if all(isinstance(c, TextContent) for c in result.content):
        return _text(result)
    parts: JsonValue = [c.model_dump(mode="json", exclude_none=True) for c in result.content]
    return parts


@dataclass(slots=True)
class _Listing:
    tools: list[RemoteTool]
    expires: float


ListingStatus = Literal["cached", "discovered", "unreachable", "unknown"]


@dataclass(frozen=True, slots=True)
class ServerListing:
    """What is known of one server's tools without running a turn (the context report):
    ``cached`` (a fresh cached listing, no network), ``discovered`` (listed now),
    ``unreachable`` (listing failed: ``error`` says why) or ``unknown`` (not cached, and not
    listed now: its tools are unknown until a turn lists them)."""

    spec: McpServerSpec
    status: ListingStatus
    tools: tuple[McpTool, ...] = ()
    error: str | None = None


class McpToolset:
    """The MCP tools of a turn, with the discovery cache. One per process (``bootstrap``)."""

    def __init__(
        self,
        directory: McpServerDirectory,
        connector: McpConnector,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._connector = connector
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, _Listing] = {}

    async def servers(self, org_id: str, runtime: RuntimeAgent) -> list[McpServerSpec]:
        """The turn's servers: registered ones named by ``mcp:{id}`` refs, then the scoped
        ``mcpServers`` map (a scoped server replaces a registered one of the same name)."""
        refs = [server_id_of_ref(c.ref) for c in runtime.capabilities]
        registered = await self._directory.specs(org_id, [r for r in refs if r])
        by_name = {s.name: s for s in registered}
        scoped = scoped_specs(
            runtime.mcp_servers,
            lambda name, entry: self._directory.scoped_headers(org_id, name, entry),
        )
        by_name.update({s.name: s for s in scoped})
        return list(by_name.values())

    async def tools(
        self, org_id: str, runtime: RuntimeAgent, *, connect: bool = True
    ) -> dict[str, Tool]:
        """The turn's MCP tools by model-facing name. ``connect=False`` uses cached listings
        only; otherwise a server without a fresh listing is listed now, and one that cannot be
        listed is represented by stand-ins that report it unreachable (for ``find``)."""
        found: dict[str, Tool] = {}
        for spec in await self.servers(org_id, runtime):
            listing = self._cached(spec)
            if listing is None and connect:
                try:
                    listing = await self._list(spec, runtime.network_access)
                except McpUnavailable as exc:
                    log.warning("MCP server %r: listing tools failed: %s", spec.name, exc)
                    prefix = tool_name(spec.name, "")
                    found.setdefault(prefix, _UnreachableTool(prefix, spec.name, str(exc)))
                    continue
            for remote in listing or ():
                tool = self._tool(spec, remote)
                if tool.name in found:
                    log.warning("MCP tool name %r is offered twice; keeping the first", tool.name)
                    continue
                found[tool.name] = tool
        return found

    async def listings(
        self, org_id: str, runtime: RuntimeAgent, *, connect: bool
    ) -> list[ServerListing]:
        """Each of the turn's servers with the tools known of it. A fresh cached listing is
        used as it is (no network); without one, ``connect`` lists the server now, through the
        connector (egress guard, ``timeout_seconds``) and into the cache the next turn reads,
        and otherwise the server's tools are ``unknown``. Never raises for a server."""
        found: list[ServerListing] = []
        for spec in await self.servers(org_id, runtime):
            listing = self._cached(spec)
            status: ListingStatus = "cached"
            if listing is None and not connect:
                found.append(ServerListing(spec, "unknown"))
                continue
            if listing is None:
                try:
                    listing = await self._list(spec, runtime.network_access)
                except McpUnavailable as exc:
                    found.append(ServerListing(spec, "unreachable", error=str(exc)))
                    continue
                status = "discovered"
            tools = tuple(self._tool(spec, remote) for remote in listing)
            found.append(ServerListing(spec, status, tools))
        return found

    async def listed(self, org_id: str, runtime: RuntimeAgent) -> dict[str, Tool]:
        """The tools to offer the model: from cached listings only, without stand-ins."""
        tools = await self.tools(org_id, runtime, connect=False)
        return {n: t for n, t in tools.items() if isinstance(t, McpTool)}

    async def discover(self, org_id: str, runtime: RuntimeAgent) -> None:
        """List every server of the turn that has no fresh cached listing (never raises)."""
        await self.tools(org_id, runtime, connect=True)

    async def find(self, org_id: str, runtime: RuntimeAgent, name: str) -> Tool | None:
        """The tool the model called ``name``: listed, a stand-in for an unreachable server,
        or None."""
        tools = await self.tools(org_id, runtime, connect=True)
        if name in tools:
            return tools[name]
        for prefix, tool in tools.items():
            if isinstance(tool, _UnreachableTool) and name.startswith(prefix):
                return _UnreachableTool(name, tool.server, tool.reason)
        return None

    def _tool(self, spec: McpServerSpec, remote: RemoteTool) -> McpTool:
        return McpTool(
            name=tool_name(spec.name, remote.name),
            description=remote.description,
            parameters=remote.input_schema,
            remote_name=remote.name,
            spec=spec,
            connector=self._connector,
            side_effect=remote.side_effect,
        )

    def _cached(self, spec: McpServerSpec) -> list[RemoteTool] | None:
        entry = self._cache.get(spec.config_key)
        if entry is None or entry.expires <= self._clock():
            return None
        return entry.tools

    async def _list(self, spec: McpServerSpec, access: NetworkAccess) -> list[RemoteTool]:
        tools = await self._connector.list_tools(spec, access)
        moment = self._clock()
        for key in [k for k, v in self._cache.items() if v.expires <= moment]:
            del self._cache[key]
        self._cache[spec.config_key] = _Listing(tools, moment + self._cache_seconds)
        return tools
