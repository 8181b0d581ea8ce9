"""Seal the header values of scoped mcpServers (harnesses, agents, sessions, agent versions)

Until now an entry of an ``mcpServers`` map stored its ``headers`` (``Authorization: Bearer
...``) as plaintext JSON. This rewrites each such entry to the sealed form the services write
(``header_names`` and ``headers_sealed``, see ``domain.mcp``), with the sealer
``store.migrate.upgrade`` is given (the app's secret key). Only rows whose map mentions
``"headers"`` are read. Without a sealer the migration refuses to run over rows that need one,
rather than leave plaintext behind for good.

Revision ID: 0014_seal_mcp_headers
Revises: 0013_token_expiry
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0014_seal_mcp_headers"
down_revision: str | None = "0013_token_expiry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables as of this revision (only the columns read or written here).
_JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _table(name: str, *json_columns: str) -> sa.TableClause:
    columns = [sa.column(c, _JSON) for c in json_columns]
    return sa.table(name, sa.column("id", sa.String), sa.column("organization_id"), *columns)


harnesses = _table("harnesses", "mcp_servers")
agents = _table("agents", "mcp_servers")
sessions = _table("sessions", "mcp_servers")
agent_versions = _table("agent_versions", "authored_config", "resolved_config")


def upgrade() -> None:
    seal = context.config.attributes.get("seal_headers")
    conn = op.get_bind()
    for table in (harnesses, agents, sessions):
        for row in _mentioning_headers(conn, table, table.c.mcp_servers):
            servers = _sealed(seal, row.organization_id, row.mcp_servers)
            if servers is not None:
                conn.execute(table.update().where(table.c.id == row.id).values(mcp_servers=servers))
    for row in _mentioning_headers(conn, agent_versions, agent_versions.c.authored_config):
        values = {}
        for column in ("authored_config", "resolved_config"):
            config = dict(getattr(row, column))
            servers = _sealed(seal, row.organization_id, config.get("mcp_servers") or {})
            if servers is not None:
                values[column] = {**config, "mcp_servers": servers}
        if values:
            conn.execute(
                agent_versions.update().where(agent_versions.c.id == row.id).values(**values)
            )


def downgrade() -> None:
    pass  # sealed headers stay sealed; older code reads them as a server without headers


def _mentioning_headers(conn: sa.Connection, table: sa.TableClause, column: Any) -> Any:
    return conn.execute(
        sa.select(table).where(sa.cast(column, sa.Text).like('%"headers"%'))
    ).fetchall()


def _sealed(seal: Any, org_id: str, servers: dict[str, Any]) -> dict[str, Any] | None:
    """``servers`` with plain headers sealed, or None when nothing needed sealing."""
    changed = False
    out: dict[str, Any] = {}
    for name, entry in servers.items():
        if not isinstance(entry, dict) or "headers" not in entry:
            out[name] = entry
            continue
        changed = True
        entry = dict(entry)
        headers = entry.pop("headers") or {}
        if headers:
            if seal is None:
                raise RuntimeError(
                    "sealing stored MCP header values needs the secret key: run the migration "
                    "through everloop (store.migrate.upgrade with seal_headers)"
                )
            entry["header_names"] = sorted(headers)
            entry["headers_sealed"] = seal(org_id, str(name), dict(headers))
        out[name] = entry
    return out if changed else None
