"""The org registry of MCP servers, and the server specs turns connect to.

A registered server has a slug ``name`` unique in its org, an http(s) ``url`` (streamable HTTP)
and optional ``headers`` (typically ``Authorization``). Header values are sealed with
``crypto.SecretBox`` as one JSON object (associated data: org and server id) and never returned;
responses list the header names. A registered server is the virtual capability ``mcp:{id}``:
capability lists accept that ref only for a server of the caller's org (``check_mcp_refs``).

``McpServerService.specs`` is the engine's ``McpServerDirectory``: the active registered servers
of some ids, with their headers opened, for one turn; ``scoped_headers`` opens the headers of a
scoped ``mcpServers`` entry, which ``ScopedMcpHeaders.seal`` sealed when its harness, agent or
session was written (``domain.mcp``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.crypto import SecretBox
from everloop.domain.mcp import (
    HEADER_NAMES,
    SEALED_HEADERS,
    McpServer,
    McpServerSpec,
    check_headers,
    check_url,
    scoped_headers_aad,
    server_id_of_ref,
)
from everloop.domain.timestamps import now
from everloop.errors import Conflict, EverloopError, InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.store import mcp_servers as store
from everloop.store.db import Database

log = logging.getLogger("everloop.mcp")


def headers_aad(org_id: str, server_id: str) -> str:
    """Associated data of a server's sealed headers: they open only on their own row."""
    return f"{org_id}/{server_id}/headers"


async def check_mcp_refs(
    conn: AsyncConnection, org_id: str, capabilities: Iterable[Mapping[str, Any]] | None
) -> None:
    """Every ``mcp:{id}`` ref in ``capabilities`` names a server of ``org_id``; else a 422."""
    wanted = [
        (index, server_id)
        for index, entry in enumerate(capabilities or ())
        if (server_id := server_id_of_ref(str(entry.get("ref")))) is not None
    ]
    if not wanted:
        return
    found = await store.existing_ids(conn, org_id, [s for _, s in wanted])
    for index, server_id in wanted:
        if server_id not in found:
            raise InvalidInput(
                f"unknown capability 'mcp:{server_id}': no MCP server with that id "
                "(GET /v1/mcp-servers lists them)",
                code="unknown_capability",
                field=f"capabilities.{index}.ref",
            )


class ScopedMcpHeaders:
    """Seals and opens the header values of scoped ``mcpServers`` entries (harness, agent and
    session layers). Values are write-only: an update that leaves an entry's ``headers`` out
    keeps the stored ones, as long as its URL is the same."""

    def __init__(self, secrets: SecretBox) -> None:
        self._secrets = secrets

    def seal(
        self,
        org_id: str,
        servers: Mapping[str, Any] | None,
        current: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``servers`` as stored: each entry's ``headers`` sealed, or kept from ``current``
        (the stored map) when left out. 422 naming the field for a bad header, or for headers
        left out of an entry whose URL changed (they are never sent to another URL)."""
        stored: dict[str, Any] = {}
        for name, given in (servers or {}).items():
            entry = {k: v for k, v in given.items() if k not in (HEADER_NAMES, SEALED_HEADERS)}
            headers = entry.pop("headers", None)
            before = (current or {}).get(name)
            before = before if isinstance(before, Mapping) else {}
            if headers is None:
                headers = self._kept(org_id, name, entry, before)
            where = f"mcpServers.{name}.headers"
            if headers:
                entry.update(self._sealed(org_id, name, check_headers(headers, where), before))
            stored[name] = entry
        return stored

    def open(self, org_id: str, name: str, entry: Mapping[str, Any]) -> dict[str, str]:
        """An entry's header values: sealed, or plain in an entry stored before sealing."""
        sealed = entry.get(SEALED_HEADERS)
        if not isinstance(sealed, str):
            plain = entry.get("headers")
            return dict(plain) if isinstance(plain, Mapping) else {}
        opened: dict[str, str] = json.loads(
            self._secrets.open(sealed, scoped_headers_aad(org_id, name))
        )
        return opened

    def _kept(
        self, org_id: str, name: str, entry: Mapping[str, Any], before: Mapping[str, Any]
    ) -> dict[str, str]:
        headers = self.open(org_id, name, before) if before else {}
        if headers and before.get("url") != entry.get("url"):
            raise InvalidInput(
                f"the URL of MCP server '{name}' changed: send its headers again (stored header "
                "values are kept only for the same URL; send {} for none)",
                field=f"mcpServers.{name}.headers",
            )
        return headers

    def _sealed(
        self, org_id: str, name: str, headers: dict[str, str], before: Mapping[str, Any]
    ) -> dict[str, Any]:
        # The same values keep the same sealed text, so re-sending them changes nothing
        # (an agent's config hash, and so its versions, stay put).
        sealed = before.get(SEALED_HEADERS)
        if not (isinstance(sealed, str) and self.open(org_id, name, before) == headers):
            sealed = self._secrets.seal(json.dumps(headers), scoped_headers_aad(org_id, name))
        return {HEADER_NAMES: sorted(headers), SEALED_HEADERS: sealed}


class McpServerService:
    def __init__(self, db: Database, secrets: SecretBox) -> None:
        self._db = db
        self._secrets = secrets
        self.scoped = ScopedMcpHeaders(secrets)

    def scoped_headers(self, org_id: str, name: str, entry: Mapping[str, Any]) -> dict[str, str]:
        """The header values of a turn's scoped server (none, logged, if they do not open)."""
        try:
            return self.scoped.open(org_id, name, entry)
        except EverloopError as exc:
            log.warning("MCP server %r: its headers cannot be opened: %s", name, exc.message)
            return {}

    async def create(self, caller: Caller, fields: dict[str, Any]) -> McpServer:
        org = caller.organization_id
        server_id = ids.new_id("mcp")
        url = check_url(fields["url"])
        headers = check_headers(fields.get("headers") or {})
        ts = now()
        row = {
            "id": server_id,
            "organization_id": org,
            "name": fields["name"],
            "description": fields.get("description"),
            "url": url,
            "transport_type": fields.get("transport_type") or "http",
            "status": fields.get("status") or "active",
            "created_at": ts,
            "updated_at": ts,
            **self._sealed(org, server_id, headers),
        }
        async with self._db.write() as conn:
            await self._check_name_free(conn, org, fields["name"])
            await _guarded(store.insert(conn, row), fields["name"])
            created = await store.get(conn, org, server_id)
        assert created is not None
        return created

    async def specs(self, org_id: str, server_ids: Sequence[str]) -> list[McpServerSpec]:
        """The active servers among ``server_ids`` (unknown and disabled ones are left out),
        with their header values opened, for one turn's connections."""
        async with self._db.read() as conn:
            rows = await store.active_with_headers(conn, org_id, server_ids)
        specs = []
        for server, sealed in rows:
            headers: dict[str, str] = {}
            if sealed is not None:
                headers = json.loads(self._secrets.open(sealed, headers_aad(org_id, server.id)))
            specs.append(
                McpServerSpec(
                    name=server.name, url=server.url, headers=headers, server_id=server.id
                )
            )
        return specs

    async def get(self, caller: Caller, server_id: str) -> McpServer:
        async with self._db.read() as conn:
            return await self._get(conn, caller.organization_id, server_id)

    async def list(self, caller: Caller, *, search: str | None = None) -> list[McpServer]:
        async with self._db.read() as conn:
            return await store.list_servers(conn, caller.organization_id, search=search)

    async def update(self, caller: Caller, server_id: str, fields: dict[str, Any]) -> McpServer:
        org = caller.organization_id
        values: dict[str, Any] = {}
        if "description" in fields:
            values["description"] = fields["description"]
        for key in ("name", "transport_type", "status"):  # null leaves these as they are
            if fields.get(key) is not None:
                values[key] = fields[key]
        if fields.get("url") is not None:
            values["url"] = check_url(fields["url"])
        if "headers" in fields:
            values.update(self._sealed(org, server_id, check_headers(fields["headers"] or {})))
        async with self._db.write() as conn:
            current = await self._get(conn, org, server_id)
            moved = values.get("url", current.url) != current.url
            if moved and current.header_names and "headers" not in fields:
                raise InvalidInput(
                    "the URL changed: send the headers again (stored header values are kept "
                    "only for the same URL; send {} for none)",
                    field="headers",
                )
            if "name" in values and values["name"] != current.name:
                await self._check_name_free(conn, org, values["name"])
            if values:
                values["updated_at"] = now()
                await _guarded(store.update_server(conn, org, server_id, values), current.name)
            updated = await store.get(conn, org, server_id)
        assert updated is not None
        return updated

    async def delete(self, caller: Caller, server_id: str) -> None:
        ids.parse("mcp", server_id, field="server_id")
        async with self._db.write() as conn:
            if not await store.delete_server(conn, caller.organization_id, server_id):
                raise NotFound.of("MCP server", server_id)

    def _sealed(self, org_id: str, server_id: str, headers: dict[str, str]) -> dict[str, Any]:
        sealed = (
            self._secrets.seal(json.dumps(headers), headers_aad(org_id, server_id))
            if headers
            else None
        )
        return {"headers_encrypted": sealed, "header_names": sorted(headers)}

    async def _get(self, conn: AsyncConnection, org_id: str, server_id: str) -> McpServer:
        ids.parse("mcp", server_id, field="server_id")
        found = await store.get(conn, org_id, server_id)
        if found is None:
            raise NotFound.of("MCP server", server_id)
        return found

    async def _check_name_free(self, conn: AsyncConnection, org_id: str, name: str) -> None:
        if await store.get_by_name(conn, org_id, name) is not None:
            raise Conflict(f"an MCP server named '{name}' already exists", field="name")


async def _guarded(operation: Any, name: str) -> None:
    """Run a write; a unique-name race that slipped past the check is a 409."""
    try:
        await operation
    except IntegrityError as exc:
        raise Conflict(f"an MCP server named '{name}' already exists", field="name") from exc
