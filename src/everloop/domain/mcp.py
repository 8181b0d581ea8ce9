"""MCP servers as values: where a session's MCP tools come from and what the model calls them.

A session reaches MCP servers two ways: a registered org server named by the virtual capability
``mcp:{server_id}`` in any layer's capability list, and the ``mcpServers`` map
(``{name: {"url", "headers"?}}``) of the harness, agent and session layers (merged by name, later
layer wins; a session-layer entry exists for that session only). Both become an
:class:`McpServerSpec`. The model sees each remote tool as ``mcp_{server}__{tool}``, sanitized to
the tool-name pattern every model API accepts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from everloop.errors import InvalidInput

MCP_REF_PREFIX = "mcp:"
TOOL_PREFIX = "mcp_"
MAX_TOOL_NAME = 64
MAX_HEADERS = 100
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,200}$")


McpServerStatus = Literal["active", "disabled"]


@dataclass(frozen=True, slots=True)
class McpServer:
    """A registered org server (``mcp_servers`` row). Header values are sealed in the store and
    never part of this value: ``header_names`` says which headers are set."""

    id: str
    organization_id: str
    name: str
    description: str | None
    url: str
    transport_type: str
    header_names: tuple[str, ...]
    status: McpServerStatus
    created_at: str
    updated_at: str

    @property
    def capability_ref(self) -> str:
        return f"{MCP_REF_PREFIX}{self.id}"


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """One MCP server a turn may use. ``server_id`` is set for a registered server; a scoped one
    (from an ``mcpServers`` map) has none. ``headers`` hold plaintext values: never persist it."""

    name: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    server_id: str | None = None

    @property
    def config_key(self) -> str:
        """Changes whenever the server's identity, URL or headers do: the tool cache's key."""
        material = json.dumps(
            [self.server_id, self.name, self.url, sorted(self.headers.items())],
            separators=(",", ":"),
        )
        return hashlib.sha256(material.encode()).hexdigest()


def server_id_of_ref(ref: str) -> str | None:
    """The server id of a capability ref ``mcp:{server_id}``, or None for other refs."""
    return ref[len(MCP_REF_PREFIX) :] if ref.startswith(MCP_REF_PREFIX) else None


def tool_name(server: str, tool: str) -> str:
    """``mcp_{server}__{tool}`` with unsafe characters replaced by ``_``; a name longer than 64
    characters is cut and ends with a short hash of the full name, so it stays unique."""
    name = _UNSAFE.sub("_", f"{TOOL_PREFIX}{server}__{tool}")
    if len(name) <= MAX_TOOL_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_TOOL_NAME - 9]}_{digest}"


def scoped_specs(servers: Mapping[str, Any]) -> list[McpServerSpec]:
    """The specs of an assembled ``mcpServers`` map (entries without a URL are skipped)."""
    specs = []
    for name, entry in servers.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("url"), str):
            continue
        headers = entry.get("headers") or {}
        specs.append(
            McpServerSpec(
                name=str(name),
                url=entry["url"],
                headers={str(k): str(v) for k, v in dict(headers).items()},
            )
        )
    return specs


def check_url(url: str, field_name: str = "url") -> str:
    """``url`` if it is an absolute http(s) URL with a host and no credentials, else a 422."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or any(c.isspace() for c in url)
    ):
        raise InvalidInput(
            f"'{url[:200]}' is not a valid MCP server URL (an http or https URL with a host)",
            code="invalid_url",
            field=field_name,
        )
    return url


def check_headers(headers: Mapping[str, str], field_name: str = "headers") -> dict[str, str]:
    """``headers`` if every name is an HTTP token and no value holds CR, LF or NUL, else a 422."""
    if len(headers) > MAX_HEADERS:
        raise InvalidInput(f"at most {MAX_HEADERS} headers are allowed", field=field_name)
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise InvalidInput(f"'{name[:100]}' is not a valid header name", field=field_name)
        if any(c in value for c in "\r\n\0"):
            raise InvalidInput(
                f"the value of header '{name}' contains CR, LF or NUL",
                code="invalid_header",
                field=f"{field_name}.{name}",
            )
    return dict(headers)
