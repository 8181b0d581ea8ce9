"""Migrations conformance: runs on SQLite, and on PostgreSQL with EVERLOOP_TEST_POSTGRES_URL."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from everloop.config import Settings
from everloop.store import migrate
from everloop.store.tables import metadata


def _state(url: str) -> tuple[list[str], set[str], set[str]]:
    engine = create_engine(migrate.sync_url(url))
    try:
        with engine.connect() as conn:
            versions = [
                row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))
            ]
            tables = set(inspect(conn).get_table_names())
            if conn.dialect.name == "postgresql":
                query = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'events'::regclass"
            else:
                query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            triggers = {row[0] for row in conn.execute(text(query)) if not row[0].startswith("RI_")}
    finally:
        engine.dispose()
    return versions, tables, triggers


def test_upgrade_is_idempotent(settings: Settings) -> None:
    # The settings fixture has already upgraded this database once.
    url = settings.app_database_url
    first = _state(url)
    migrate.upgrade(url)
    migrate.upgrade(url)
    assert _state(url) == first
    versions, tables, triggers = first
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert sorted(versions) == sorted(heads)
    assert {t.name for t in metadata.sorted_tables} <= tables
    assert triggers, "the append-only triggers on events are missing"


def test_schema_matches_the_tables_module(settings: Settings) -> None:
    # The migrations create every column that tables.py declares (no drift between the two).
    engine = create_engine(migrate.sync_url(settings.app_database_url))
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            for table in metadata.sorted_tables:
                columns = {c["name"] for c in found.get_columns(table.name)}
                assert {c.name for c in table.columns} == columns, table.name
    finally:
        engine.dispose()
