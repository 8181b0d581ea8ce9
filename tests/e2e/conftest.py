"""End-to-end fixtures: ``everloop serve`` as a real subprocess on 127.0.0.1.

``server`` starts one process on a free port and a temp data dir; ``start_server`` starts one with
extra environment (and can prepare its data dir or database first). Both kill every process
they started in teardown, pass or fail. With ``EVERLOOP_TEST_POSTGRES_URL`` set, each test gets
a fresh PostgreSQL database (``everloop_e2e_<hex>``), dropped afterwards.

Every wait polls a condition inside a deadline: nothing here sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

POSTGRES_URL = os.environ.get("EVERLOOP_TEST_POSTGRES_URL")
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
POLL = 0.05


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def everloop_command() -> list[str]:
    """The ``everloop`` console script installed beside this interpreter (no ``__main__``)."""
    script = Path(sys.executable).with_name("everloop")
    assert script.exists(), f"console script not found at {script}"
    return [str(script)]


def wait_for(
    condition: Callable[[], Any], *, timeout: float, what: str, interval: float = POLL
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Server:
    """One ``everloop serve`` process; restartable on the same data dir and port."""

    def __init__(self, data_dir: Path, port: int, env: dict[str, str], role: str = "serve") -> None:
        self.data_dir = data_dir
        self.port = port
        self.env = env
        self.role = role  # serve | api | worker
        self.log_path = data_dir.parent / f"{role}-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as out:
            out.write(f"\n--- start #{self.starts} ---\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [
                    *everloop_command(),
                    self.role,
                    "--host",
                    HOST,
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                response = httpx.get(f"{self.base_url}/healthz", timeout=1.0)
            except httpx.TransportError:
                return False
            if self.role == "worker":
                return response.status_code == 200
            return response.status_code == 200 and (self.data_dir / "admin-token").exists()

        try:
            wait_for(ready, timeout=START_TIMEOUT, what="/healthz", interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log()[-4000:]}") from None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """``kill -9``: no shutdown code runs."""
        assert self.process is not None and self.alive()
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        """Send SIGTERM (the caller waits for the exit, within its own deadline)."""
        assert self.process is not None and self.alive()
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if the process is still running after ``timeout``."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def restart(self) -> None:
        """Start again on the same data dir and port (after a kill or a stop)."""
        if self.alive():
            self.terminate()
            if self.wait_exit(10) is None:
                self.kill9()
        self.start()

    def stop(self) -> None:
        """Teardown: end the process group, however it is doing."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def client(self, **kwargs: Any) -> httpx.Client:
        # No keep-alive: a pooled connection would outlive a killed server.
        return httpx.Client(
            base_url=f"{self.api_url}/v1/",
            headers=self.headers,
            timeout=30.0,
            limits=httpx.Limits(max_keepalive_connections=0),
            **kwargs,
        )


@dataclass
class Api:
    """Small synchronous helpers over a running server's HTTP API."""

    server: Server
    _client: httpx.Client | None = field(default=None, repr=False)

    @property
    def http(self) -> httpx.Client:
        # Made lazily and again after a restart: the token is read from the data dir.
        if self._client is None:
            self._client = self.server.client()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, f"{response.status_code}: {response.text}"
        return response.json() if response.content else None

    def llmsim_model(self, script: dict[str, Any], name: str | None = None) -> str:
        """A model under the built-in ``llmsim`` provider running ``script``; its id."""
        providers = self.ok(self.http.get("providers"))["data"]
        provider = next(p for p in providers if p["driver"] == "llmsim")
        body = {"model_id": name or f"sim-{secrets.token_hex(4)}", "settings": {"llmsim": script}}
        created = self.ok(self.http.post(f"providers/{provider['id']}/models", json=body), 201)
        return str(created["id"])

    def create_session(self, model_id: str, **extra: Any) -> str:
        body = {"model_id": model_id, **extra}
        return str(self.ok(self.http.post("sessions", json=body), 201)["id"])

    def post_message(self, session_id: str, text: str) -> dict[str, Any]:
        body = {"message": {"role": "user", "content": [{"type": "text", "text": text}]}}
        posted: dict[str, Any] = self.ok(
            self.http.post(f"sessions/{session_id}/messages", json=body), 201
        )
        return posted

    def events(self, session_id: str, **params: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.ok(
                self.http.get(
                    f"sessions/{session_id}/events",
                    params={"after_sequence": after, "limit": 1000, **params},
                )
            )["data"]
            found.extend(page)
            if len(page) < 1000:
                return found
            after = page[-1]["sequence"]

    def wait_event(
        self, session_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> list[dict[str, Any]]:
        """Poll GET /events until an event matches; return the whole log at that moment."""

        def seen() -> list[dict[str, Any]] | None:
            found = self.events(session_id)
            return found if any(predicate(e) for e in found) else None

        result: list[dict[str, Any]] = wait_for(seen, timeout=timeout, what="an event")
        return result

    def wait_type(
        self, session_id: str, event_type: str, count: int = 1, timeout: float = 30
    ) -> list[dict[str, Any]]:
        def seen() -> list[dict[str, Any]] | None:
            found = self.events(session_id)
            return found if sum(e["type"] == event_type for e in found) >= count else None

        result: list[dict[str, Any]] = wait_for(
            seen, timeout=timeout, what=f"{count} x {event_type}"
        )
        return result


@dataclass
class Frame:
    """One server-sent-events frame (or a comment line, with ``comment`` set)."""

    event: str | None = None
    id: str | None = None
    data: str = ""
    retry: int | None = None
    comment: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


def iter_frames(lines: Iterator[str]) -> Iterator[Frame]:
    """Parse ``text/event-stream`` lines into frames; comments come out as their own frames."""
    frame = Frame()
    data: list[str] = []
    touched = False
    for line in lines:
        if line == "":
            if touched:
                frame.data = "\n".join(data)
                yield frame
            frame, data, touched = Frame(), [], False
            continue
        if line.startswith(":"):
            yield Frame(comment=line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        touched = True
        if name == "event":
            frame.event = value
        elif name == "id":
            frame.id = value
        elif name == "data":
            data.append(value)
        elif name == "retry" and value.isdigit():
            frame.retry = int(value)


def _pg_conninfo(url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers (``start_server(EVERLOOP_X="...")``); all are killed in teardown."""
    started: list[Server] = []
    databases: list[str] = []

    def start(prepare: Callable[[Server], None] | None = None, **extra_env: str) -> Server:
        # ``prepare(server)`` runs before the process starts (its data dir exists, its database
        # is created): to lay out what a test starts from.
        root = tmp_path / f"server{len(started)}"
        root.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
        env["EVERLOOP_LOG_LEVEL"] = "INFO"
        if POSTGRES_URL:
            import psycopg

            name = f"everloop_e2e_{secrets.token_hex(6)}"
            with psycopg.connect(_pg_conninfo(POSTGRES_URL), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            databases.append(name)
            from sqlalchemy.engine import make_url

            env["EVERLOOP_DATABASE_URL"] = (
                make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
            )
        env.update(extra_env)
        server = Server(root / "data", free_port(), env)
        started.append(server)
        if prepare is not None:
            server.data_dir.mkdir()
            prepare(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
        if databases and POSTGRES_URL:
            import psycopg

            with psycopg.connect(_pg_conninfo(POSTGRES_URL), autocommit=True) as conn:
                for name in databases:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


@pytest.fixture
def api(server: Server) -> Iterator[Api]:
    helper = Api(server)
    try:
        yield helper
    finally:
        helper.close()
