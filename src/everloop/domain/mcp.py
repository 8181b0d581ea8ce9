"""MCP servers as values: where a session's MCP tools come from and what the model calls them.

A session reaches MCP servers two ways: a registered org server named by the virtual capability
``mcp:{server_id}`` in any layer's capability list, and the ``mcpServers`` map
(``{name: {"url", "headers"?}}``) of the harness, agent and session layers (merged by name, later
layer wins; a session-layer entry exists for that session only). Both become an
:class:`McpServerSpec`.

Header values of a scoped entry are write-only, like a registered server's: the services store
an entry as its ``url`` (and other fields), ``header_names`` and ``headers_sealed`` (the values
as one sealed JSON object), and responses show ``public_mcp_servers`` (names, never values).
Entries stored before sealing still hold plain ``headers``; they are read as they are.

The model sees each remote tool as ``mcp_{server}__{tool}``, sanitized to the tool-name pattern
every model API accepts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from everloop.errors import InvalidInput

MCP_REF_PREFIX = "mcp:"
TOOL_PREFIX = "mcp_"
MAX_TOOL_NAME = 64
MAX_HEADERS = 100
HEADER_NAMES = "header_names"
SEALED_HEADERS = "headers_sealed"
_HEADER_KEYS = frozenset({"headers", HEADER_NAMES, SEALED_HEADERS})
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


def scoped_specs(
    servers: Mapping[str, Any], open_headers: Callable[[str, Mapping[str, Any]], Mapping[str, str]]
) -> list[McpServerSpec]:
    """The specs of an assembled ``mcpServers`` map (entries without a URL are skipped);
    ``open_headers(name, entry)`` gives an entry's header values."""
    specs = []
    for name, entry in servers.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("url"), str):
            continue
        headers = open_headers(str(name), entry)
        specs.append(
            McpServerSpec(
                name=str(name),
                url=entry["url"],
                headers={str(k): str(v) for k, v in headers.items()},
            )
        )
    return specs


def scoped_headers_aad(org_id: str, name: str) -> str:
    """Associated data of a scoped entry's sealed headers: they open only in their org and
    under their server name (a harness, agent, version or session of that org may hold them)."""
    return f"{org_id}/mcpServers/{name}/headers"


def header_names(entry: Mapping[str, Any]) -> list[str]:
    """The names of the headers an entry sets, sealed or (an entry stored before) plain."""
    names = entry.get(HEADER_NAMES)
    if isinstance(names, list):
        return [str(n) for n in names]
    plain = entry.get("headers")
    return sorted(str(n) for n in plain) if isinstance(plain, Mapping) else []


def public_mcp_servers(servers: Mapping[str, Any] | None) -> dict[str, Any]:
    """An ``mcpServers`` map as a response shows it: each entry without its header values,
    with ``header_names`` when it sets headers."""
    shown: dict[str, Any] = {}
    for name, entry in (servers or {}).items():
        if not isinstance(entry, Mapping):
            shown[name] = entry
            continue
        public = {k: v for k, v in entry.items() if k not in _HEADER_KEYS}
        if names := header_names(entry):
            public[HEADER_NAMES] = names
        shown[name] = public
    return shown


def public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """An agent's (or a version's) config as a response shows it: ``mcp_servers`` public."""
    shown = dict(config)
    if isinstance(shown.get("mcp_servers"), Mapping):
        shown["mcp_servers"] = public_mcp_servers(shown["mcp_servers"])
    return shown


def public_diff(diff: Mapping[str, Any]) -> dict[str, Any]:
    """A config diff (``{key: {"from", "to"}}``) as a response shows it."""
    shown = dict(diff)
    change = shown.get("mcp_servers")
    if isinstance(change, Mapping):
        shown["mcp_servers"] = {
            side: public_mcp_servers(value) if isinstance(value, Mapping) else value
            for side, value in change.items()
        }
    return shown


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
