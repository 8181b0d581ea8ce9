"""Migrations conformance: runs on SQLite, and on PostgreSQL with EVERLOOP_TEST_POSTGRES_URL."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table, create_engine, inspect, text
from sqlalchemy.engine import make_url

from everloop.config import Settings
from everloop.store import migrate
from everloop.store.tables import metadata

POSTGRES_URL = os.environ.get("EVERLOOP_TEST_POSTGRES_URL")


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


@pytest.fixture
def blank_url(tmp_path: Path) -> Iterator[str]:
    """The URL of an empty app database: a new SQLite file, or a new PostgreSQL database."""
    if not POSTGRES_URL:
        yield f"sqlite+aiosqlite:///{tmp_path / 'blank.db'}"
        return
    name = f"everloop_migrate_{secrets.token_hex(4)}"
    admin = make_url(POSTGRES_URL).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_heads_names_the_newest_revisions() -> None:
    # upgrade() skips Alembic when a database records exactly HEADS: it must follow the scripts.
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert frozenset(heads) == migrate.HEADS


def test_an_older_database_is_brought_to_head(blank_url: str) -> None:
    engine = create_engine(migrate.sync_url(blank_url))
    try:
        with engine.begin() as connection:
            cfg = migrate.alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0003")
    finally:
        engine.dispose()
    assert _state(blank_url)[0] == ["0003"]
    migrate.upgrade(blank_url)
    versions, tables, _ = _state(blank_url)
    assert frozenset(versions) == migrate.HEADS
    assert {t.name for t in metadata.sorted_tables} <= tables


def _loads_alembic(url: str) -> bool:
    """Whether ``migrate.upgrade(url)`` in a new interpreter imports Alembic."""
    code = (
        "import sys; from everloop.store import migrate; migrate.upgrade(sys.argv[1]); "
        "print('alembic' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip() == "True"


def test_only_a_database_behind_head_loads_alembic(settings: Settings, blank_url: str) -> None:
    # The settings fixture's database is at head: one version read, no migration environment.
    assert not _loads_alembic(settings.app_database_url)
    assert _loads_alembic(blank_url)
    assert frozenset(_state(blank_url)[0]) == migrate.HEADS


def _filler(column: Any) -> Any:
    """A value for a NOT NULL column of a reflected table (the row only has to exist)."""
    kind = column.type.__class__.__name__.upper()
    if "INT" in kind:
        return 0
    if "BOOL" in kind:
        return False
    if "JSON" in kind:
        return []
    if "BINARY" in kind or "BLOB" in kind or "BYTEA" in kind:
        return b""
    return "x"


def _insert(conn: Any, name: str, values: dict[str, Any]) -> None:
    table = Table(name, MetaData(), autoload_with=conn)
    row = {
        c.name: _filler(c)
        for c in table.columns
        if not c.nullable and c.server_default is None and c.name not in values
    }
    conn.execute(table.insert(), {**row, **values})


def test_0026_moves_session_files_into_automatic_workspaces(blank_url: str) -> None:
    hexes = ["0" * 31 + "1", "0" * 31 + "2"]
    org = "org_" + "9" * 32
    engine = create_engine(migrate.sync_url(blank_url))
    try:
        with engine.begin() as connection:
            cfg = migrate.alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0025_channels")
            _insert(connection, "organizations", {"id": org, "name": "Org"})
            for number, hex_part in enumerate(hexes):
                _insert(
                    connection,
                    "sessions",
                    {
                        "id": f"session_{hex_part}",
                        "organization_id": org,
                        "owner_principal_id": "principal_" + "1" * 32,
                        "created_at": "2026-01-01T00:00:00.000Z",
                        "deleted_at": "2026-01-02T00:00:00.000Z" if number else None,
                    },
                )
            for path, parent, directory, content in (
                ("/docs", "/", True, None),
                ("/docs/a.md", "/docs", False, b"hello"),
            ):
                _insert(
                    connection,
                    "session_files",
                    {
                        "session_id": f"session_{hexes[0]}",
                        "path": path,
                        "parent_path": parent,
                        "id": path,
                        "is_directory": directory,
                        "is_readonly": False,
                        "content": content,
                        "size_bytes": len(content or b""),
                        "content_hash": None,
                        "created_at": "t",
                        "updated_at": "t",
                    },
                )
    finally:
        engine.dispose()
    migrate.upgrade(blank_url)
    engine = create_engine(migrate.sync_url(blank_url))
    try:
        with engine.connect() as conn:
            live, deleted = (f"session_{h}" for h in hexes)
            wsp = f"wsp_{hexes[0]}"
            sessions = dict(conn.execute(text("SELECT id, workspace_id FROM sessions")).all())
            assert sessions == {live: wsp, deleted: None}
            found = conn.execute(
                text("SELECT id, name, session_id, organization_id, status FROM workspaces")
            ).all()
            assert [tuple(r) for r in found] == [(wsp, f"session-{hexes[0]}", live, org, "active")]
            files = conn.execute(
                text("SELECT workspace_id, path, content FROM workspace_files ORDER BY path")
            ).all()
            assert [(r[0], r[1], bytes(r[2]) if r[2] is not None else None) for r in files] == [
                (wsp, "/docs", None),
                (wsp, "/docs/a.md", b"hello"),
            ]
            assert "session_files" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_0029_makes_each_organizations_first_admin_its_owner(blank_url: str) -> None:
    orgs = ["org_" + "7" * 32, "org_" + "8" * 32]
    principal = ["principal_" + str(n) * 32 for n in range(1, 5)]
    engine = create_engine(migrate.sync_url(blank_url))
    try:
        with engine.begin() as connection:
            cfg = migrate.alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0028_health_checks")
            for org in orgs:
                _insert(connection, "organizations", {"id": org, "name": "Org"})
            # Org one: two admins (the earlier one becomes the owner) and a member; org two: a
            # member only (no admin to promote: it stays as it is).
            for pid, org, role, created in (
                (principal[0], orgs[0], "admin", "2026-01-01T00:00:00.000Z"),
                (principal[1], orgs[0], "admin", "2026-01-02T00:00:00.000Z"),
                (principal[2], orgs[0], "member", "2025-12-01T00:00:00.000Z"),
                (principal[3], orgs[1], "member", "2026-01-01T00:00:00.000Z"),
            ):
                _insert(
                    connection,
                    "principals",
                    {
                        "id": pid,
                        "organization_id": org,
                        "kind": "user",
                        "subject_id": pid[-32:],
                        "role": role,
                        "created_at": created,
                    },
                )
    finally:
        engine.dispose()
    migrate.upgrade(blank_url)
    engine = create_engine(migrate.sync_url(blank_url))
    try:
        with engine.connect() as conn:
            roles = dict(conn.execute(text("SELECT id, role FROM principals")).all())
            assert roles == {
                principal[0]: "owner",
                principal[1]: "admin",
                principal[2]: "member",
                principal[3]: "member",
            }
            updated = conn.execute(text("SELECT created_at, updated_at FROM organizations")).all()
            assert all(row[0] == row[1] for row in updated)
    finally:
        engine.dispose()
