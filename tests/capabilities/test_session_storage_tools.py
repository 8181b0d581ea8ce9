"""The file_system, key_value, secrets and leased_resources tools, each through a real turn
(llmsim scripts), and the session delete that purges their storage."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.conftest import POSTGRES_URL, Api
from tests.engine.conftest import new_session, send, wait_turns_ended

from everloop.domain.timestamps import now
from everloop.store import session_storage as storage
from everloop.store.session_storage import Lease
from everloop.store.tables import session_kv, session_leases, session_secrets, workspace_files
from everloop.store.workspaces import automatic_id

PLAINTEXT = "sk-live-7c1f0e2b9d4a-never-leak-me"


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


def _rule(when: str, tool: str, **arguments: Any) -> dict[str, Any]:
    return {"when": when, "name": tool, "arguments": arguments}


def _files_holding(data_dir: Path, needle: bytes) -> tuple[list[str], list[str]]:
    """Every file under ``data_dir`` and those whose bytes contain ``needle``."""
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    return [p.name for p in files], [str(p) for p in files if needle in p.read_bytes()]


async def _turn(api: Api, session_id: str, text: str, number: int) -> list[dict[str, Any]]:
    """Send ``text``; return the ``tool.completed`` data of that turn."""
    await send(api, session_id, text)
    found = await wait_turns_ended(api, session_id, count=number)
    turn_id = [e for e in found if e["type"] == "input.message"][-1]["context"]["turn_id"]
    return [
        e["data"]
        for e in found
        if e["type"] == "tool.completed" and e["context"]["turn_id"] == turn_id
    ]


def _result(completed: dict[str, Any]) -> Any:
    assert completed["success"], completed
    return json.loads(completed["result"][0]["text"])


async def test_file_tools_through_turns(engine: Api) -> None:
    api = engine
    script = {
        "response": {"type": "fixed", "text": "ok"},
        "tool_calls": [
            _rule("^write", "write_file", path="/workspace/notes/a.md", content="hello\nworld\n"),
            _rule("^read", "read_file", path="notes/a.md", offset=2, limit=1),
            _rule("^edit", "edit_file", path="/notes/a.md", old_string="world", new_string="there"),
            _rule(
                "^cas",
                "edit_file",
                path="/notes/a.md",
                content="new",
                expected_hash="sha256:" + "0" * 64,
            ),
            _rule("^list", "list_directory", path="/notes"),
            _rule("^grep", "grep", pattern="th.re", path_pattern="*.md"),
            _rule("^stat", "stat", path="/notes/a.md"),
            _rule("^escape", "read_file", path="../etc/passwd"),
            _rule("^delete", "delete_file", path="/notes", recursive=True),
        ],
    }
    sid = await new_session(api, script, capabilities=[{"ref": "file_system"}])
    session = (await api.client.get(f"/v1/sessions/{sid}")).json()
    assert "file_system" in session["features"]

    (written,) = await _turn(api, sid, "write it", 1)
    assert _result(written)["created"] is True and _result(written)["path"] == "/notes/a.md"
    (read,) = await _turn(api, sid, "read it", 2)
    assert _result(read)["content"] == "world\n" and _result(read)["total_lines"] == 2
    (edited,) = await _turn(api, sid, "edit it", 3)
    assert _result(edited)["content_hash"].startswith("sha256:")
    rest = (await api.client.get(f"/v1/sessions/{sid}/fs/notes/a.md")).json()
    assert rest["content"] == "hello\nthere\n"
    (cas,) = await _turn(api, sid, "cas it", 4)
    assert not cas["success"] and "changed" in cas["error"]
    (listed,) = await _turn(api, sid, "list it", 5)
    assert [e["name"] for e in _result(listed)["entries"]] == ["a.md"]
    (grepped,) = await _turn(api, sid, "grep it", 6)
    assert _result(grepped)["matches"] == [
        {"path": "/notes/a.md", "line_number": 2, "line": "there"}
    ]
    (stat,) = await _turn(api, sid, "stat it", 7)
    assert _result(stat)["size_bytes"] == 12 and _result(stat)["is_directory"] is False
    (escape,) = await _turn(api, sid, "escape it", 8)
    assert not escape["success"] and "leaves /workspace" in escape["error"]
    (deleted,) = await _turn(api, sid, "delete it", 9)
    assert _result(deleted)["deleted"] == 2
    assert (await api.client.get(f"/v1/sessions/{sid}/fs")).json()["data"] == []


async def test_file_tools_refuse_to_change_read_only_files(engine: Api) -> None:
    api = engine
    script = {
        "response": {"type": "fixed", "text": "ok"},
        "tool_calls": [
            _rule("^overwrite", "write_file", path="/locked.txt", content="changed"),
            _rule("^remove", "delete_file", path="/locked.txt"),
        ],
    }
    sid = await new_session(
        api,
        script,
        capabilities=[{"ref": "file_system"}],
        initial_files=[{"path": "/locked.txt", "content": "original", "is_readonly": True}],
    )
    (overwrite,) = await _turn(api, sid, "overwrite", 1)
    assert not overwrite["success"] and "read-only" in overwrite["error"]
    (remove,) = await _turn(api, sid, "remove", 2)
    assert not remove["success"] and "read-only" in remove["error"]
    assert (await api.client.get(f"/v1/sessions/{sid}/fs/locked.txt")).json()[
        "content"
    ] == "original"


async def test_grep_tool_with_a_catastrophic_or_unsupported_pattern(engine: Api) -> None:
    # ``(a+)+$`` backtracks for hours on the 41-character first line in Python's re.
    api = engine
    script = {
        "response": {"type": "fixed", "text": "ok"},
        "tool_calls": [
            _rule("^hostile", "grep", pattern="(a+)+$"),
            _rule("^lookahead", "grep", pattern="(?=a)a"),
        ],
    }
    content = "a" * 40 + "!\naaaa\n"
    sid = await new_session(
        api,
        script,
        capabilities=[{"ref": "file_system"}],
        initial_files=[{"path": "/evil.txt", "content": content}],
    )
    (hostile,) = await _turn(api, sid, "hostile", 1)
    assert _result(hostile) == {
        "matches": [{"path": "/evil.txt", "line_number": 2, "line": "aaaa"}],
        "truncated": False,
    }
    (lookahead,) = await _turn(api, sid, "lookahead", 2)
    assert not lookahead["success"]
    assert "invalid or unsupported regular expression" in lookahead["error"]


async def test_key_value_tools_through_turns(engine: Api) -> None:
    api = engine
    script = {
        "response": {"type": "fixed", "text": "ok"},
        "tool_calls": [
            _rule("^set", "kv_set", key="color", value="blue"),
            _rule("^get", "kv_get", key="color"),
            _rule("^list", "kv_list", prefix="co"),
            _rule("^del", "kv_delete", key="color"),
        ],
    }
    sid = await new_session(api, script, capabilities=[{"ref": "key_value"}])
    assert (await _turn(api, sid, "set", 1))[0]["success"]
    keys = (await api.client.get(f"/v1/sessions/{sid}/storage/keys")).json()["data"]
    assert [(k["key"], k["value"]) for k in keys] == [("color", "blue")]
    (got,) = await _turn(api, sid, "get", 2)
    assert _result(got) == {"key": "color", "found": True, "value": "blue"}
    (listed,) = await _turn(api, sid, "list", 3)
    assert _result(listed)["keys"] == ["color"]
    (deleted,) = await _turn(api, sid, "del", 4)
    assert _result(deleted)["deleted"] is True
    (again,) = await _turn(api, sid, "get", 5)
    assert _result(again)["found"] is False


async def test_a_secret_never_reaches_an_api_response_event_log_or_database(
    engine: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api = engine
    caplog.set_level(logging.DEBUG)
    script = {
        "response": {"type": "fixed", "text": "done"},
        "tool_calls": [
            _rule("secret", "secret_get", name="API_TOKEN"),
            _rule("missing", "secret_get", name="NOPE"),
        ],
    }
    sid = await new_session(api, script, capabilities=[{"ref": "secrets"}])
    responses = [
        await api.client.put(
            f"/v1/sessions/{sid}/storage/secrets", json={"secrets": {"API_TOKEN": PLAINTEXT}}
        )
    ]
    (completed,) = await _turn(api, sid, "read the secret", 1)
    assert completed["success"]
    (missing,) = await _turn(api, sid, "missing one", 2)
    assert not missing["success"] and "NOPE" in missing["error"]
    for path in (
        f"/v1/sessions/{sid}/storage/secrets",
        f"/v1/sessions/{sid}/storage/keys",
        f"/v1/sessions/{sid}/events",
        f"/v1/sessions/{sid}/messages",
        f"/v1/sessions/{sid}",
    ):
        responses.append(await api.client.get(path))
    for response in responses:
        assert response.status_code == 200, response.text
        assert PLAINTEXT not in response.text
    names = responses[1].json()["data"]
    assert [n["name"] for n in names] == ["API_TOKEN"] and set(names[0]) == {
        "name",
        "created_at",
        "updated_at",
    }
    assert PLAINTEXT not in caplog.text
    # The database: every stored column, and on SQLite the files themselves (WAL included).
    async with api.services.db.read() as conn:
        sealed = await conn.scalar(select(session_secrets.c.value_encrypted))
        assert sealed is not None and PLAINTEXT not in sealed
    if not POSTGRES_URL:
        names, holding = _files_holding(Path(api.services.settings.data_dir), PLAINTEXT.encode())
        assert "everloop.db" in names
        assert holding == []


async def test_lease_tools_and_the_resources_route(engine: Api) -> None:
    api = engine
    script = {
        "response": {"type": "fixed", "text": "ok"},
        "tool_calls": [
            _rule("^acquire", "acquire_lease", name="sandbox", ttl_seconds=600),
            _rule("^release", "release_lease", name="sandbox"),
        ],
    }
    sid = await new_session(api, script, capabilities=[{"ref": "leased_resources"}])
    (acquired,) = await _turn(api, sid, "acquire", 1)
    assert _result(acquired)["renewed"] is False
    resources = (await api.client.get(f"/v1/sessions/{sid}/resources")).json()
    assert [(r["resource_id"], r["status"], r["kind"]) for r in resources] == [
        ("sandbox", "active", "lease")
    ]
    (renewed,) = await _turn(api, sid, "acquire again", 2)
    assert _result(renewed)["renewed"] is True
    (released,) = await _turn(api, sid, "release", 3)
    assert _result(released)["released"] is True
    assert (await api.client.get(f"/v1/sessions/{sid}/resources")).json() == []


async def test_expired_leases_are_released_on_read_and_by_the_sweep(api: Api) -> None:
    first = str((await api.client.post("/v1/sessions", json={})).json()["id"])
    second = str((await api.client.post("/v1/sessions", json={})).json()["id"])
    past, ts = "2000-01-01T00:00:00.000Z", now()
    async with api.services.db.write() as conn:
        for sid in (first, second):
            await storage.put_lease(conn, Lease(sid, "old", "lease", None, past, ts, ts))
        await storage.put_lease(
            conn, Lease(first, "live", "lease", {"a": 1}, "2999-01-01T00:00:00.000Z", ts, ts)
        )
    listed = (await api.client.get(f"/v1/sessions/{first}/resources")).json()
    assert [(r["resource_id"], r["metadata"]) for r in listed] == [("live", {"a": 1})]
    assert await api.services.storage.sweep_expired_leases() == 1  # the second session's
    async with api.services.db.read() as conn:
        left = await conn.scalar(select(func.count()).select_from(session_leases))
    assert left == 1


async def test_deleting_a_session_deletes_its_storage(api: Api) -> None:
    created = await api.client.post(
        "/v1/sessions", json={"initial_files": [{"path": "/a/b.txt", "content": "x"}]}
    )
    sid = str(created.json()["id"])
    other = str((await api.client.post("/v1/sessions", json={})).json()["id"])
    for session_id in (sid, other):
        await api.client.put(
            f"/v1/sessions/{session_id}/storage/secrets", json={"secrets": {"K": "v"}}
        )
        async with api.services.db.write() as conn:
            await storage.put_value(conn, session_id, "k", "v", now())
            await storage.put_lease(
                conn,
                Lease(session_id, "l", "lease", None, "2999-01-01T00:00:00.000Z", now(), now()),
            )
    await api.client.post(f"/v1/sessions/{other}/fs/keep.txt", json={"content": "x"})
    assert (await api.client.delete(f"/v1/sessions/{sid}")).status_code in (200, 204)
    async with api.services.db.read() as conn:
        files = {
            session_id: await conn.scalar(
                select(func.count())
                .select_from(workspace_files)
                .where(workspace_files.c.workspace_id == automatic_id(session_id))
            )
            for session_id in (sid, other)
        }
        assert files[sid] == 0 and files[other] >= 1
        for table in (session_kv, session_secrets, session_leases):
            counts = {
                session_id: await conn.scalar(
                    select(func.count()).select_from(table).where(table.c.session_id == session_id)
                )
                for session_id in (sid, other)
            }
            assert counts[sid] == 0 and counts[other] >= 1, table.name
    assert (await api.client.get(f"/v1/sessions/{sid}/fs")).status_code == 404
