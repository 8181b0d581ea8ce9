"""Event log conformance: runs on SQLite, and on PostgreSQL with EVERLOOP_TEST_POSTGRES_URL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from everloop.bootstrap import Services
from everloop.domain.event_log import Event, EventContext, NewEvent
from everloop.errors import NotFound
from everloop.services.auth import Caller
from everloop.store.event_log import EventQuery, append_events, read_events, sequence_of
from everloop.store.sql import Store


async def _new_session(services: Services) -> str:
    boot = await services.auth.bootstrap()
    await services.harnesses.seed_built_ins(boot.organization_id)
    store = Store()
    async with services.db.read() as conn:
        user_id = await store.first_user_id(conn)
        assert user_id is not None
        principal = (await store.user_principals(conn, user_id))[0]
    caller = Caller(boot.organization_id, principal.id, user_id)
    return (await services.sessions.create(caller, {})).id


async def _append(services: Services, session_id: str, *types: str) -> list[Event]:
    async with services.db.write() as conn:
        return await append_events(
            conn, session_id, [NewEvent(t, {"n": i}) for i, t in enumerate(types)]
        )


async def _all(services: Services, session_id: str) -> list[Event]:
    async with services.db.read() as conn:
        return await read_events(conn, session_id, EventQuery(limit=10_000))


async def test_a_new_session_starts_its_log_at_one(services: Services) -> None:
    session_id = await _new_session(services)
    events = await _all(services, session_id)
    assert [(e.sequence, e.type) for e in events] == [(1, "session.started")]


async def test_appends_continue_the_sequence_in_order(services: Services) -> None:
    session_id = await _new_session(services)
    first = await _append(services, session_id, "a")
    batch = await _append(services, session_id, "b", "c", "d")
    assert [e.sequence for e in first] == [2]
    assert [e.sequence for e in batch] == [3, 4, 5]
    stored = await _all(services, session_id)
    assert [(e.sequence, e.type) for e in stored] == [
        (1, "session.started"),
        (2, "a"),
        (3, "b"),
        (4, "c"),
        (5, "d"),
    ]
    assert [e.id for e in stored[1:]] == [e.id for e in first + batch]
    assert stored[2].data == {"n": 0}
    assert await _append(services, session_id) == []


async def test_concurrent_appends_are_gapless(services: Services) -> None:
    session_id = await _new_session(services)
    other_id = await _new_session(services)
    writers = 40

    async def write(i: int) -> list[Event]:
        target = session_id if i % 4 else other_id
        return await _append(services, target, *[f"e{i}.{k}" for k in range(1 + i % 3)])

    results = await asyncio.gather(*(write(i) for i in range(writers)))
    for sid in (session_id, other_id):
        stored = await _all(services, sid)
        sequences = [e.sequence for e in stored]
        assert sequences == list(range(1, len(stored) + 1))
        assert len({e.id for e in stored}) == len(stored)
        appended = [e for batch in results for e in batch if e.session_id == sid]
        assert sorted(e.sequence for e in appended) == sequences[1:]
    # Each batch got consecutive sequences: no other writer interleaved inside it.
    for batch in results:
        seqs = [e.sequence for e in batch]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        by_seq = {e.sequence: e for e in await _all(services, batch[0].session_id)}
        assert [by_seq[s].type for s in seqs] == [e.type for e in batch]


async def test_reading_pages_and_filters(services: Services) -> None:
    session_id = await _new_session(services)
    turn = EventContext(turn_id="turn_" + "1" * 32)
    async with services.db.write() as conn:
        added = await append_events(
            conn,
            session_id,
            [
                NewEvent("x", {}),
                NewEvent("y", {}, context=turn),
                NewEvent("x", {}, context=turn),
                NewEvent("z", {}, metadata={"m": 1}, tags=["t"]),
            ],
        )
    async with services.db.read() as conn:
        after = await read_events(conn, session_id, EventQuery(after_sequence=2, limit=2))
        assert [e.sequence for e in after] == [3, 4]
        before = await read_events(conn, session_id, EventQuery(before_sequence=3))
        assert [e.sequence for e in before] == [1, 2]
        only_x = await read_events(conn, session_id, EventQuery(types=["x"]))
        assert [e.sequence for e in only_x] == [2, 4]
        no_x = await read_events(conn, session_id, EventQuery(exclude=["x", "session.started"]))
        assert [e.type for e in no_x] == ["y", "z"]
        in_turn = await read_events(conn, session_id, EventQuery(turn_id=turn.turn_id))
        assert [e.sequence for e in in_turn] == [3, 4]
        assert in_turn[0].context == turn
        newest = await read_events(conn, session_id, EventQuery(newest_first=True, limit=2))
        assert [e.sequence for e in newest] == [5, 4]
        assert newest[0].metadata == {"m": 1}
        assert newest[0].tags == ["t"]
        assert await sequence_of(conn, session_id, added[2].id) == 4
        assert await sequence_of(conn, session_id, "event_" + "0" * 32) is None


async def test_appending_to_an_unknown_session_fails_and_writes_nothing(
    services: Services,
) -> None:
    with pytest.raises(NotFound):
        await _append(services, "session_" + "0" * 32, "a")
    async with services.db.read() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM events"))
    assert count == 0


async def test_a_sequence_cannot_be_taken_twice(services: Services) -> None:
    session_id = await _new_session(services)
    with pytest.raises(IntegrityError):
        async with services.db.write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO events (id, session_id, sequence, type, ts, context, data) "
                    "VALUES (:id, :sid, 1, 'dup', '2026-01-01T00:00:00.000Z', '{}', '{}')"
                ),
                {"id": "event_" + "f" * 32, "sid": session_id},
            )
    assert [e.type for e in await _all(services, session_id)] == ["session.started"]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET type = 'rewritten' WHERE session_id = :sid",
        "UPDATE events SET data = '{}' WHERE session_id = :sid",
        "DELETE FROM events WHERE session_id = :sid",
        "DELETE FROM events",
    ],
)
async def test_events_cannot_be_changed_or_deleted(services: Services, statement: str) -> None:
    session_id = await _new_session(services)
    await _append(services, session_id, "kept")
    before = await _all(services, session_id)
    with pytest.raises(DBAPIError, match="append-only"):
        async with services.db.write() as conn:
            await conn.execute(text(statement), {"sid": session_id})
    assert await _all(services, session_id) == before


async def test_search_indexes_events_written_before_its_migration(services: Services) -> None:
    """0020_event_search indexes the events already in the log, and the append keeps
    indexing new ones (deltas excepted)."""
    from alembic import command

    from everloop.store import migrate

    session_id = await _new_session(services)
    async with services.db.write() as conn:
        old = await append_events(
            conn,
            session_id,
            [
                NewEvent("tool.completed", {"tool_name": "lookup", "result": "Old Zebra"}),
                NewEvent("output.message.delta", {"delta": "zebra"}),
            ],
        )
    cfg = migrate.alembic_config()

    def migrate_to(revision: str, down: bool) -> None:
        from sqlalchemy import create_engine

        engine = create_engine(migrate.sync_url(services.settings.app_database_url))
        try:
            with engine.begin() as connection:
                cfg.attributes["connection"] = connection
                (command.downgrade if down else command.upgrade)(cfg, revision)
        finally:
            engine.dispose()

    await asyncio.to_thread(migrate_to, "0019_generations_by_model", True)
    async with services.db.write() as conn:
        before = await append_events(conn, session_id, [NewEvent("x", {"text": "zebra two"})])
    await asyncio.to_thread(migrate_to, "heads", False)
    async with services.db.write() as conn:
        after = await append_events(conn, session_id, [NewEvent("y", {"t": ["a ZEBRA", 3]})])

    async with services.db.read() as conn:
        found = await read_events(conn, session_id, EventQuery(search="zebra"))
        assert [e.id for e in found] == [old[0].id, before[0].id, after[0].id]
        two = await read_events(conn, session_id, EventQuery(search="zebra two"))
        assert [e.id for e in two] == [before[0].id]
