"""The tokens of an embedded (SQLite) data dir, read with the standard library.

``everloop token ls`` should answer at once; SQLAlchemy and the settings' validation cost most of
half a second to import. A data dir's database that is at this code's schema revision is read
here, read-only, with ``sqlite3``; anything else (no database yet, an older revision, a
PostgreSQL database) returns None and the caller takes the full path, which migrates first.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from everloop.domain.resources import AccessToken
from everloop.store.schema_version import HEADS


def list_tokens_sqlite(database: Path) -> list[AccessToken] | None:
    """Every token in ``database``, oldest first (revoked ones too); None when it cannot be
    read here."""
    if not database.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        versions = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
        if versions != HEADS:
            return None
        rows = conn.execute(
            "SELECT id, user_id, name, token_hint, created_at, expires_at, revoked_at "
            "FROM access_tokens ORDER BY created_at, id"
        ).fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return [AccessToken(*row) for row in rows]
