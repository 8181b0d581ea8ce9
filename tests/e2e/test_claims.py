"""One process per data dir and per executor id, a port checked first, private data files
(issue 13, items 6 and 11), with real ``everloop`` processes.

A second server on a running server's data dir would launch its engine under the same executor
id and could recover (take over) the turns the first one runs: it must exit at once, naming the
holder, before it touches anything. ``kill -9`` leaves no stale lock behind.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import POSTGRES_URL, Api, Server, everloop_command, free_port, wait_for

pytestmark = pytest.mark.slow

ONE_TOOL = {
    "response": {"type": "fixed", "text": "The sum is 5."},
    "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
}


def _everloop(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run an ``everloop`` command that must end by itself (a server that starts times out)."""
    return subprocess.run(
        [*everloop_command(), *args], env=env, capture_output=True, text=True, timeout=45
    )


def _healthy(server: Server) -> bool:
    return httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200


def _ready(server: Server) -> bool:
    return httpx.get(f"{server.base_url}/readyz", timeout=5).status_code == 200


def test_a_second_server_on_a_data_dir_exits_at_once_naming_the_holder(server: Server) -> None:
    done = _everloop(
        server.env, "serve", "--port", str(free_port()), "--data-dir", str(server.data_dir)
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"pid {server.pid}" in done.stderr
    assert str(server.data_dir.resolve()) in done.stderr
    assert "migrating" not in done.stdout  # refused before touching anything
    assert _healthy(server)

    # Management commands still work beside the server.
    created = _everloop(
        server.env, "token", "create", "--name", "beside", "--data-dir", str(server.data_dir)
    )
    assert created.returncode == 0, created.stderr

    # kill -9 leaves no stale lock: the same data dir starts again at once.
    server.kill9()
    server.start()
    assert f"pid {server.pid}" in (server.data_dir / "everloop.lock").read_text()


def test_a_taken_port_fails_the_start_before_the_data_dir_is_used(
    server: Server, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh"
    done = _everloop(server.env, "serve", "--port", str(server.port), "--data-dir", str(fresh))
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{server.port}" in done.stderr
    assert not (fresh / "everloop.db").exists()
    assert not (fresh / "admin-token").exists()
    assert _healthy(server)


def _modes(data_dir: Path) -> dict[str, str]:
    """Every path under the data dir (and the dir itself) whose mode is not 0600/0700."""
    loose = {}
    for path in [data_dir, *data_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        if mode != wanted:
            loose[str(path.relative_to(data_dir))] = oct(mode)
    return loose


def test_data_files_are_private_after_a_real_start_and_a_turn(
    start_server: Callable[..., Server],
) -> None:
    old = os.umask(0o022)  # the usual umask, inherited by the server
    try:
        server = start_server()
    finally:
        os.umask(old)
    api = Api(server)
    try:
        model = api.llmsim_model(ONE_TOOL)
        session = api.create_session(model, capabilities=[{"ref": "test_math"}])
        api.post_message(session, "add 2 and 3")
        api.wait_type(session, "turn.completed")
    finally:
        api.close()
    if not POSTGRES_URL:
        assert (server.data_dir / "everloop.db-wal").exists()
    assert (server.data_dir / "admin-token").exists()
    assert _modes(server.data_dir) == {}


@pytest.mark.skipif(not POSTGRES_URL, reason="executors share a database only on PostgreSQL")
def test_no_two_live_executors_share_an_id(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    served = start_server()
    wait_for(lambda: _ready(served), timeout=60, what="the engine to run")
    taken = (served.data_dir / "executor-id").read_text().strip()
    env = {**served.env, "EVERLOOP_EXECUTOR_ID": taken}
    worker_dir = tmp_path / "worker"
    done = _everloop(env, "worker", "--port", str(free_port()), "--data-dir", str(worker_dir))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"executor id '{taken}' is in use by everloop executor pid {served.pid}" in (
        done.stdout + done.stderr
    )
    assert _healthy(served)

    # A worker on the data dir of a running server is refused as well (its default id is kept
    # there), and a worker of its own may start.
    same_dir = {k: v for k, v in served.env.items() if k != "EVERLOOP_EXECUTOR_ID"}
    done = _everloop(
        same_dir, "worker", "--port", str(free_port()), "--data-dir", str(served.data_dir)
    )
    assert done.returncode == 1
    assert f"pid {served.pid}" in done.stderr
    worker = Server(worker_dir, free_port(), same_dir, role="worker")
    try:
        worker.start()
        wait_for(lambda: _ready(worker), timeout=60, what="the worker's engine")
    finally:
        worker.stop()

    # After kill -9 the id is free again: the restarted server claims it and resumes its turns.
    served.kill9()
    served.start()
    wait_for(lambda: _ready(served), timeout=60, what="the restarted engine")
