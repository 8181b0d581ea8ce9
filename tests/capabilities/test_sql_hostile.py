"""A hostile tenant's SQL (issue 13): the time limit holds for any statement, a huge result is
refused without being built, and while one session's SQL runs no other tenant waits for it."""

from __future__ import annotations

import os
import signal
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import make_org
from tests.capabilities.test_sql_database import FAST, ok, people, tool_turn
from tests.conftest import Api
from tests.engine.conftest import events, new_session, send, wait_for, wait_turns_ended

from everloop import sql_sandbox
from everloop.sql_pool import SqlWorkerPool
from everloop.sql_sandbox import Limits, SandboxError

# One C call of SQLite that its progress handler never interrupts: about 10 s on the test VM.
PRINTF = "SELECT length(printf('%.*c', 2000000000, 'x'))"
READ = "SELECT n FROM c"
# 1,001 rows of 500 kB (667 kB as base64): 500 MB if built whole, for a 1 MB result cap.
ZEROBLOBS = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 1001) "
    "SELECT zeroblob(500000) FROM r"
)


# -- reading stops at the caps -------------------------------------------------------------------


def test_reading_stops_at_the_row_that_passes_the_byte_cap() -> None:
    pulled = 0

    def blobs() -> Iterator[tuple[bytes]]:
        nonlocal pulled
        for _ in range(1001):
            pulled += 1
            yield (bytes(500_000),)

    with pytest.raises(SandboxError, match=r"too large.*1048576 bytes at row 2"):
        sql_sandbox.read_rows(blobs(), ["blob"], Limits())
    assert pulled == 2


def test_reading_stops_one_row_past_the_row_cap() -> None:
    pulled = 0

    def numbers() -> Iterator[tuple[int]]:
        nonlocal pulled
        for n in range(10_000):
            pulled += 1
            yield (n,)

    rows, truncated = sql_sandbox.read_rows(numbers(), ["n"], Limits(max_rows=10))
    assert rows == [[n] for n in range(10)] and truncated is True
    assert pulled == 11


def test_a_zeroblob_flood_is_refused_without_building_the_result() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(SandboxError, match="result is too large"):
            sql_sandbox.query(people(), ZEROBLOBS, (), Limits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"{peak} bytes allocated for a 1 MB result cap"


# -- the worker pool -----------------------------------------------------------------------------


@pytest.fixture
async def pool() -> AsyncIterator[SqlWorkerPool]:
    workers = SqlWorkerPool(1)
    yield workers
    await workers.close()


async def test_the_pool_kills_a_statement_sqlite_does_not_interrupt(pool: SqlWorkerPool) -> None:
    limits = Limits(timeout_seconds=0.5)
    with pytest.raises(SandboxError, match=r"0\.5 s time limit"):
        await pool.run("query", people(), limits, PRINTF)
    assert pool.killed == 1
    # The next call gets a fresh worker and works.
    reply = await pool.run("query", people(), limits, "SELECT count(*) FROM people")
    assert reply.result["rows"] == [[3]]


async def test_a_workers_start_up_does_not_count_against_the_time_limit(
    pool: SqlWorkerPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A start-up that takes a second, whatever the machine's load: Python imports
    # ``sitecustomize`` from the worker's PYTHONPATH before anything else.
    (tmp_path / "sitecustomize.py").write_text("import time\ntime.sleep(1.0)\n")
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    reply = await pool.run("query", people(), Limits(timeout_seconds=0.5), "SELECT 1")
    assert reply.result["rows"] == [[1]]
    assert pool.killed == 0


async def test_an_ordinary_runaway_query_keeps_its_worker(pool: SqlWorkerPool) -> None:
    runaway = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r"
    with pytest.raises(SandboxError, match="time limit"):
        await pool.run("query", people(), FAST, runaway)
    assert pool.killed == 0  # its progress handler stopped it: no new process needed


async def test_the_pool_runs_writes_and_refusals(pool: SqlWorkerPool) -> None:
    insert = "INSERT INTO people(name) VALUES (?)"
    written = await pool.run("execute", people(), FAST, insert, ["x"])
    assert written.result == {"rows_affected": 1, "last_insert_rowid": 4, "changed": True}
    found = await pool.run("query", written.blob, FAST, "SELECT name FROM people WHERE id = 4")
    assert found.result["rows"] == [["x"]]
    unchanged = await pool.run("execute", people(), FAST, "UPDATE people SET age = 1 WHERE 0")
    assert unchanged.result["changed"] is False and unchanged.blob == b""
    refused = ("ATTACH ':memory:' AS other", "VACUUM INTO '/tmp/x.db'", "PRAGMA writable_schema=1")
    for sql in refused:
        with pytest.raises(SandboxError, match="refused"):
            await pool.run("execute", people(), FAST, sql)
    with pytest.raises(SandboxError, match="cannot be passed"):
        await pool.run("query", people(), FAST, "SELECT ?", [2**70])
    assert pool.killed == 0


async def test_a_worker_killed_from_outside_is_replaced(pool: SqlWorkerPool) -> None:
    await pool.run("query", people(), FAST, "SELECT 1")
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(SandboxError, match="worker failed; the statement had no effect"):
        await pool.run("query", people(), FAST, "SELECT 1")
    assert pool.killed == 1
    assert (await pool.run("query", people(), FAST, "SELECT 2")).result["rows"] == [[2]]
    assert pid not in pool.pids()


# -- through turns, on the app database ----------------------------------------------------------

HOSTILE = {
    "response": {"type": "echo"},
    "tool_calls": [
        {"when": "^create", "name": "create_database", "arguments": {"name": "t"}},
        {"when": "^printf", "name": "sql_query", "arguments": {"database": "t", "sql": PRINTF}},
        {"when": "^blobs", "name": "sql_query", "arguments": {"database": "t", "sql": ZEROBLOBS}},
        {
            "when": "^counter",
            "name": "sql_execute",
            "arguments": {"database": "t", "sql": "CREATE TABLE c(n); INSERT INTO c VALUES (0)"},
        },
        # Two calls in one model answer run in parallel, on the same database.
        *(
            {
                "when": "^bump",
                "name": "sql_execute",
                "arguments": {"database": "t", "sql": "UPDATE c SET n = n + 1"},
            }
            for _ in range(2)
        ),
        {"when": "^read", "name": "sql_query", "arguments": {"database": "t", "sql": READ}},
    ],
}


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


@pytest.fixture
async def neighbour(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A client of another organization."""
    _, _, _, token = await make_org(api, "Neighbour")
    async with httpx.AsyncClient(
        transport=api.client._transport,
        base_url=str(api.client.base_url),
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


def completed(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in found if e["type"] == "tool.completed"]


async def test_a_hostile_statement_is_stopped_and_no_other_tenant_waits_for_it(
    engine: Api, neighbour: httpx.AsyncClient
) -> None:
    engine.services.session_databases.limits = Limits(timeout_seconds=2.0)
    sid = await new_session(engine, HOSTILE, capabilities=[{"ref": "sql_database"}])
    ok(await tool_turn(engine, sid, "create it", 1))

    await send(engine, sid, "printf attack")
    await wait_for(engine, sid, "tool.started", count=2)  # the hostile call is running
    other = await neighbour.post("/v1/sessions", json={"title": "next door"})
    assert other.status_code == 201, other.text
    # The neighbour's write went through while the hostile statement still ran.
    assert len(completed(await events(engine, sid))) == 1

    done = completed(await wait_turns_ended(engine, sid, count=2))[-1]["data"]
    assert done["success"] is False and "2 s time limit" in done["error"]


async def test_a_result_over_the_byte_cap_is_a_tool_error(engine: Api) -> None:
    sid = await new_session(engine, HOSTILE, capabilities=[{"ref": "sql_database"}])
    ok(await tool_turn(engine, sid, "create it", 1))
    refused = await tool_turn(engine, sid, "blobs please", 2)
    assert refused["success"] is False and "result is too large" in refused["error"]


async def test_parallel_writes_to_one_database_lose_no_update(engine: Api) -> None:
    sid = await new_session(engine, HOSTILE, capabilities=[{"ref": "sql_database"}])
    ok(await tool_turn(engine, sid, "create it", 1))
    ok(await tool_turn(engine, sid, "counter table", 2))
    await send(engine, sid, "bump twice")
    bumps = completed(await wait_turns_ended(engine, sid, count=3))[-2:]
    assert [ok(b["data"])["rows_affected"] for b in bumps] == [1, 1]
    assert ok(await tool_turn(engine, sid, "read it", 4))["rows"] == [[2]]


async def test_cancelling_the_turn_kills_its_statement(engine: Api) -> None:
    service = engine.services.session_databases
    service.limits = Limits(timeout_seconds=300.0)
    # One worker: the next SQL call can only run once the cancelled one gave it back.
    await service.pool.close()
    service.pool = pool = SqlWorkerPool(1)
    # A warm worker: the cancel below lands while the statement runs, not while it starts.
    await pool.run("query", people(), Limits(timeout_seconds=30.0), "SELECT 1")
    sid = await new_session(engine, HOSTILE, capabilities=[{"ref": "sql_database"}])
    ok(await tool_turn(engine, sid, "create it", 1))
    await send(engine, sid, "printf attack")
    await wait_for(engine, sid, "tool.started", count=2)
    cancelled = await engine.client.post(f"/v1/sessions/{sid}/cancel")
    assert cancelled.status_code in (200, 202), cancelled.text
    await wait_for(engine, sid, "turn.cancelled")
    counter = await tool_turn(engine, sid, "counter table", 3)
    assert ok(counter)["rows_affected"] == 1
    assert pool.killed == 1
