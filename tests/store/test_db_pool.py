"""The app database's connection pool on PostgreSQL: a connection that sat idle is pinged
before use, and the ping must leave it as it found it, so a read (autocommit) or a write can
take it. Runs on PostgreSQL only (SQLite keeps its own connections, see ``store.db``)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from everloop.bootstrap import Services
from everloop.store import db as db_module
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="the pool ping is PostgreSQL's")


async def test_a_pinged_connection_serves_reads_and_writes(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every checkout counts as "idle long enough" to be pinged first.
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
    database = services.db
    for _ in range(3):
        async with database.write() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        async with database.read() as conn:
            assert (await conn.execute(text("SELECT 2"))).scalar() == 2
