"""Session SQL under a real ``everloop serve``: the statement runs in a worker process, which
the server kills at the time limit, and which dies with the server even on ``kill -9``."""

from __future__ import annotations

import os
import select
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Api, Server, wait_for

pytestmark = pytest.mark.slow

PRINTF = "SELECT length(printf('%.*c', 2000000000, 'x'))"
SCRIPT = {
    "response": {"type": "echo"},
    "tool_calls": [
        {"when": "^create", "name": "create_database", "arguments": {"name": "t"}},
        {"when": "^printf", "name": "sql_query", "arguments": {"database": "t", "sql": PRINTF}},
    ],
}


def sql_workers(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"everloop.sql_worker" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def exited(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` (not our child) exits within ``timeout``: waits on its pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def hostile_turn(api: Api) -> str:
    sid = api.create_session(api.llmsim_model(SCRIPT), capabilities=[{"ref": "sql_database"}])
    api.post_message(sid, "create it")
    api.wait_type(sid, "turn.completed")
    api.post_message(sid, "printf attack")
    api.wait_type(sid, "tool.started", count=2)
    return sid


def test_the_time_limit_holds_in_a_real_server(start_server: Callable[..., Server]) -> None:
    api = Api(start_server(EVERLOOP_SQL_STATEMENT_TIMEOUT_SECONDS="0.5"))
    try:
        sid = hostile_turn(api)
        found = api.wait_type(sid, "turn.completed", count=2)
        (done,) = [e for e in found if e["type"] == "tool.completed"][-1:]
        assert done["data"]["success"] is False
        assert "0.5 s time limit" in done["data"]["error"]
    finally:
        api.close()


def test_a_worker_dies_with_a_killed_server(start_server: Callable[..., Server]) -> None:
    server = start_server(EVERLOOP_SQL_STATEMENT_TIMEOUT_SECONDS="300")
    api = Api(server)
    try:
        hostile_turn(api)
        busy = wait_for(lambda: sql_workers(server.pid), timeout=30, what="a SQL worker")
        server.kill9()
        assert all(exited(pid, timeout=10) for pid in busy)
    finally:
        api.close()
