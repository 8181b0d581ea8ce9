"""Schema migrations, run at start-up (Alembic, scripts in ``store/migrations``).

A database already at the newest revision is the common case (every start after the first), so
``upgrade`` first reads the recorded revision and compares it with ``HEADS``; only a new, older
or unknown database loads Alembic and the migration scripts (a few hundred milliseconds).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, create_engine, inspect, text

from everloop.store.schema_version import HEADS as HEADS  # the revision migrated to

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

VERSION_TABLE = "alembic_version"

# Seals the header values of one scoped MCP server: (org_id, server name, headers) -> sealed
# text. Data migrations that seal plaintext left by older versions need it (0013).
HeaderSealer = Callable[[str, str, dict[str, str]], str]


def sync_url(url: str) -> str:
    """The synchronous driver URL for an async one (Alembic runs synchronously)."""
    return url.replace("sqlite+aiosqlite://", "sqlite://")


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def current_revisions(connection: Connection) -> frozenset[str]:
    """The revisions recorded in the database (empty for a database Alembic never touched)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return frozenset()
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return frozenset(row[0] for row in rows)


def upgrade(database_url: str, *, seal_headers: HeaderSealer | None = None) -> None:
    """Bring the app schema at ``database_url`` to the newest revision. ``seal_headers`` is
    needed only by a database holding plaintext MCP header values (written before 0013)."""
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            if current_revisions(connection) == HEADS:
                return
        with engine.begin() as connection:
            from alembic import command

            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            cfg.attributes["seal_headers"] = seal_headers
            command.upgrade(cfg, "heads")
    finally:
        engine.dispose()
