"""sql_database: the sandbox directly, and every tool through real turns."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.conftest import Api
from tests.engine.conftest import new_session, send, wait_turns_ended

from everloop import sql_sandbox
from everloop.sql_sandbox import Limits, SandboxError

COUNT_TO_100 = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 100)"
FAST = Limits(timeout_seconds=0.3, max_rows=5, max_result_bytes=2000, max_database_bytes=64 * 1024)


def people() -> bytes:
    script = (
        "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);"
        "INSERT INTO people(name, age) VALUES ('ada', 36), ('alan', 41), ('grace', 85);"
    )
    return sql_sandbox.execute(sql_sandbox.empty_database(), script, (), FAST).content


# -- the sandbox ---------------------------------------------------------------------------------


def test_write_then_read_with_parameters() -> None:
    db = people()
    added = sql_sandbox.execute(db, "INSERT INTO people(name) VALUES (?)", ["linus"], FAST)
    assert (added.rows_affected, added.last_insert_rowid) == (1, 4)
    found = sql_sandbox.query(added.content, "SELECT name FROM people WHERE id > ?", [2], FAST)
    assert found.columns == ["name"] and found.rows == [["grace"], ["linus"]]
    assert found.truncated is False


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '/tmp/everloop-attack.db' AS other",
        "ATTACH ':memory:' AS other",
        "DETACH main",
        "SELECT load_extension('/tmp/evil.so')",
        "VACUUM INTO '/tmp/everloop-copy.db'",
        "PRAGMA writable_schema = 1",
        "PRAGMA journal_mode = OFF",
        "PRAGMA max_page_count = 1000000",
        "CREATE VIRTUAL TABLE docs USING fts5(body)",
    ],
)
def test_dangerous_statements_are_refused_even_for_writes(sql: str) -> None:
    with pytest.raises(SandboxError, match=r"refused|not authorized"):
        sql_sandbox.execute(people(), sql, (), FAST)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO people(name) VALUES ('mallory')",
        "UPDATE people SET age = 1",
        "DELETE FROM people",
        "DROP TABLE people",
        "CREATE TABLE t(x)",
        "ATTACH ':memory:' AS other",
        "SELECT load_extension('x')",
    ],
)
def test_sql_query_is_read_only(sql: str) -> None:
    with pytest.raises(SandboxError, match="refused"):
        sql_sandbox.query(people(), sql, (), FAST)


def test_allowed_pragmas_read_the_schema() -> None:
    found = sql_sandbox.query(people(), "PRAGMA table_info(people)", (), FAST)
    assert [row[1] for row in found.rows] == ["id", "name", "age"]


def test_a_runaway_query_is_stopped_by_the_time_limit() -> None:
    runaway = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r"
    with pytest.raises(SandboxError, match="time limit"):
        sql_sandbox.query(people(), runaway, (), FAST)
    with pytest.raises(SandboxError, match="time limit"):
        sql_sandbox.execute(people(), f"CREATE TABLE t AS {runaway}", (), FAST)


def test_rows_are_cut_and_a_result_over_the_byte_cap_is_an_error() -> None:
    many = f"{COUNT_TO_100} SELECT n FROM r"
    found = sql_sandbox.query(people(), many, (), FAST)
    assert len(found.rows) == 5 and found.truncated is True
    wide = "SELECT printf('%.900c', 'x') FROM people"
    with pytest.raises(SandboxError, match=r"too large.*2000 bytes at row 3"):
        sql_sandbox.query(people(), wide, (), FAST)


def test_the_database_size_is_capped_and_a_failed_script_changes_nothing() -> None:
    db = people()
    fill = (
        "INSERT INTO people(name) VALUES ('before');"
        "CREATE TABLE blobs(b);"
        "INSERT INTO blobs SELECT randomblob(4000) FROM "
        f"({COUNT_TO_100} SELECT n FROM r)"
    )
    with pytest.raises(SandboxError, match="size limit"):
        sql_sandbox.execute(db, fill, (), FAST)
    assert sql_sandbox.query(db, "SELECT count(*) FROM people", (), FAST).rows == [[3]]


def test_an_open_transaction_is_refused() -> None:
    with pytest.raises(SandboxError, match="transaction"):
        sql_sandbox.execute(people(), "BEGIN; INSERT INTO people(name) VALUES ('x')", (), FAST)


def test_describe_lists_tables_and_columns() -> None:
    (table,) = sql_sandbox.describe(people(), FAST)
    assert table["name"] == "people" and table["type"] == "table"
    assert [c["name"] for c in table["columns"]] == ["id", "name", "age"]
    assert table["columns"][0]["primary_key"] is True and table["columns"][1]["not_null"] is True


def test_blobs_come_back_as_base64() -> None:
    found = sql_sandbox.query(people(), "SELECT x'00ff'", (), FAST)
    assert found.rows == [[{"base64": "AP8="}]]


# -- the tools, through turns --------------------------------------------------------------------


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


SCRIPT = {
    "response": {"type": "echo"},
    "tool_calls": [
        {"when": "^create", "name": "create_database", "arguments": {"name": "notes"}},
        {
            "when": "^write",
            "name": "sql_execute",
            "arguments": {
                "database": "notes",
                "sql": "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
                "INSERT INTO notes(body) VALUES ('first'), ('second');",
            },
        },
        {
            "when": "^add",
            "name": "sql_execute",
            "arguments": {
                "database": "notes",
                "sql": "INSERT INTO notes(body) VALUES (?)",
                "params": ["third"],
            },
        },
        {
            "when": "^read",
            "name": "sql_query",
            "arguments": {"database": "notes", "sql": "SELECT body FROM notes ORDER BY id"},
        },
        {"when": "^tables", "name": "list_tables", "arguments": {"database": "notes"}},
        {"when": "^which", "name": "list_tables", "arguments": {}},
        {
            "when": "^attach",
            "name": "sql_execute",
            "arguments": {"database": "notes", "sql": "ATTACH '/tmp/x.db' AS x"},
        },
        {
            "when": "^sneak",
            "name": "sql_query",
            "arguments": {"database": "notes", "sql": "DELETE FROM notes"},
        },
        {
            "when": "^extension",
            "name": "sql_query",
            "arguments": {"database": "notes", "sql": "SELECT load_extension('mod_spatialite')"},
        },
        {
            "when": "^forever",
            "name": "sql_query",
            "arguments": {
                "database": "notes",
                "sql": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
                "SELECT count(*) FROM r",
            },
        },
        {
            "when": "^missing",
            "name": "sql_query",
            "arguments": {"database": "nope", "sql": "SELECT 1"},
        },
    ],
}


async def tool_turn(api: Api, session_id: str, text: str, turn: int) -> dict[str, Any]:
    await send(api, session_id, text)
    found = await wait_turns_ended(api, session_id, count=turn)
    done = [e for e in found if e["type"] == "tool.completed"]
    return dict(done[-1]["data"])


def ok(done: dict[str, Any]) -> Any:
    assert done["success"] is True, done
    return json.loads(done["result"][0]["text"])


async def test_the_tools_through_turns(engine: Api) -> None:
    # Long enough that an ordinary statement fits under a loaded CI machine (a refused ATTACH
    # once ran past 0.3 s there); the runaway below is stopped at it.
    engine.services.session_databases.limits = Limits(timeout_seconds=1.5)
    sid = await new_session(engine, SCRIPT, capabilities=[{"ref": "sql_database"}])
    session = (await engine.client.get(f"/v1/sessions/{sid}")).json()
    assert "sql_database" in session["features"]

    assert ok(await tool_turn(engine, sid, "create it", 1))["name"] == "notes"
    assert ok(await tool_turn(engine, sid, "write rows", 2))["rows_affected"] == 2
    assert ok(await tool_turn(engine, sid, "add one", 3))["last_insert_rowid"] == 3
    read = ok(await tool_turn(engine, sid, "read them", 4))
    assert read["rows"] == [["first"], ["second"], ["third"]] and read["truncated"] is False
    tables = ok(await tool_turn(engine, sid, "tables please", 5))
    assert [t["name"] for t in tables["tables"]] == ["notes"]
    assert ok(await tool_turn(engine, sid, "which databases", 6)) == {"databases": ["notes"]}

    refused = await tool_turn(engine, sid, "attach another", 7)
    assert refused["success"] is False and "refused" in refused["error"]
    sneak = await tool_turn(engine, sid, "sneak a delete", 8)
    assert sneak["success"] is False and "sql_execute" in sneak["error"]
    extension = await tool_turn(engine, sid, "extension load", 9)
    assert extension["success"] is False and "load_extension" in extension["error"]
    runaway = await tool_turn(engine, sid, "forever and ever", 10)
    assert runaway["success"] is False and "time limit" in runaway["error"]
    missing = await tool_turn(engine, sid, "missing db", 11)
    assert missing["success"] is False and "not found" in missing["error"]

    # Refused statements changed nothing; the REST view sees the tools' writes.
    read = ok(await tool_turn(engine, sid, "read again", 12))
    assert len(read["rows"]) == 3
    info = (await engine.client.get(f"/v1/sessions/{sid}/databases/notes")).json()
    assert info["size_bytes"] > 0 and info["page_count"] == info["size_bytes"] // 4096


async def test_a_second_create_is_a_tool_error(engine: Api) -> None:
    sid = await new_session(engine, SCRIPT, capabilities=[{"ref": "sql_database"}])
    ok(await tool_turn(engine, sid, "create it", 1))
    again = await tool_turn(engine, sid, "create it again", 2)
    assert again["success"] is False and "already exists" in again["error"]
