"""A small pool of warm worker processes that run session SQL (see ``everloop.sql_worker``).

Why processes: the time limit must hold for any statement, and SQLite cannot be relied on to
stop itself (``printf('%.*c', 2000000000, 'x')`` is one C call that ran 12 s past a 1 s
limit). The pool gives each request to an idle worker and waits for the reply until the time
limit plus a short grace; past that it kills the worker (SIGKILL), which ends any statement at
once, and starts a replacement. A worker's own progress handler stops ordinary runaway queries
at the limit, so the common case keeps the worker (and its warm start: spawning one costs about
as much as a Python start-up, 30-60 ms, which the pool pays once per worker, not per call).

Requests wait for a free worker (at most ``size`` run at once); the wait does not count against
the statement's time limit. Workers get a minimal environment (no secrets, no settings) and
inherit nothing but the pipes, and die with the server (even a ``kill -9`` of it). Replies are
bounded: a frame larger than the request's caps allow is treated like a crash (the worker is
killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import orjson

from everloop.sql_sandbox import Limits, SandboxError, time_limit_message
from everloop.sql_worker import FRAME, READY, request

log = logging.getLogger("everloop.sql")

# Time a worker gets past the limit to report its own interrupt before it is killed.
GRACE_SECONDS = 0.25
# Room in a reply beyond the caps of its request (JSON keys, column names, a schema).
_REPLY_SLACK = 1024 * 1024
# How long a new worker may take to start (import everloop's sandbox) before it is given up.
STARTUP_SECONDS = 60.0
_READY_SIZE = 64
# What a worker inherits from the server's environment: enough to start Python and import us.
_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "SYSTEMROOT", "VIRTUAL_ENV")


@dataclass(frozen=True, slots=True)
class Reply:
    result: Any
    blob: bytes


class _Worker:
    """One worker process and its pipes; used by one request at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout

    @classmethod
    async def start(cls) -> _Worker:
        env = {name: os.environ[name] for name in _ENVIRONMENT if name in os.environ}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "everloop.sql_worker",
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        worker = cls(process)
        # Wait for the worker to say it is ready, so a statement's time limit never counts
        # the interpreter's start-up (about 0.2 s, seconds on a loaded machine).
        try:
            async with asyncio.timeout(STARTUP_SECONDS):
                header, _ = await worker._reply(_READY_SIZE)
        except (TimeoutError, ConnectionError) as exc:
            await worker.kill()
            raise SandboxError("a SQL worker could not be started; try again") from exc
        except BaseException:  # cancelled while it started: no process is left behind
            await asyncio.shield(worker.kill())
            raise
        if header != READY:
            await worker.kill()
            raise SandboxError("a SQL worker could not be started; try again")
        return worker

    async def call(self, frame: bytes, max_reply: int) -> Reply:
        """Send one request and read its reply; ``ConnectionError`` if the worker died or
        broke the protocol (then it must not be reused)."""
        try:
            self._stdin.write(frame)
            await self._stdin.drain()
        except BrokenPipeError as exc:
            raise ConnectionError(str(exc)) from exc
        header, blob = await self._reply(max_reply)
        if "error" in header:
            raise SandboxError(str(header["error"]))
        return Reply(header.get("result"), blob)

    async def _reply(self, max_size: int) -> tuple[dict[str, Any], bytes]:
        """Read one frame; ``ConnectionError`` if the worker died or broke the protocol."""
        try:
            header_size, blob_size = FRAME.unpack(await self._stdout.readexactly(FRAME.size))
            if header_size + blob_size > max_size:
                raise ConnectionError(f"a reply of {header_size + blob_size} bytes")
            header = orjson.loads(await self._stdout.readexactly(header_size))
            blob = await self._stdout.readexactly(blob_size)
        except (asyncio.IncompleteReadError, orjson.JSONDecodeError) as exc:
            raise ConnectionError(str(exc)) from exc
        if not isinstance(header, dict):
            raise ConnectionError("a reply that is not an object")
        return header, blob

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()

    async def close(self) -> None:
        """Let the worker see end-of-input and exit; kill it if it is busy."""
        self._stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 1.0)
        except TimeoutError:
            await self.kill()


class SqlWorkerPool:
    """Up to ``size`` workers, started on first use and kept warm between calls."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()  # idle and busy, to stop them all on close
        self._spares: set[asyncio.Task[None]] = set()
        self._closed = False
        self.killed = 0  # workers killed at the time limit (or broken): for tests and metrics

    async def run(
        self, op: str, content: bytes, limits: Limits, sql: str = "", params: Any = ()
    ) -> Reply:
        """Run one request on a worker within ``limits.timeout_seconds`` (plus the grace).
        ``SandboxError`` for refused or failed SQL, an over-limit statement, or a worker that
        died."""
        try:
            frame = request(op, content, limits, sql, params)
        except TypeError as exc:
            raise SandboxError(f"a parameter cannot be passed to SQLite: {exc}") from None
        max_reply = 2 * (limits.max_database_bytes + limits.max_result_bytes) + _REPLY_SLACK
        async with self._slots:
            if self._closed:
                raise SandboxError("the server is shutting down; the statement did not run")
            worker = self._idle.pop() if self._idle else await self._start()
            try:
                async with asyncio.timeout(limits.timeout_seconds + GRACE_SECONDS):
                    reply = await worker.call(frame, max_reply)
            except SandboxError:
                self._idle.append(worker)
                raise
            except TimeoutError:
                await self._replace(worker)
                raise SandboxError(time_limit_message(limits)) from None
            except ConnectionError as exc:
                log.warning("a SQL worker failed and was replaced: %s", exc)
                await self._replace(worker)
                raise SandboxError("the SQL worker failed; the statement had no effect") from None
            except BaseException:  # cancelled mid-request: the pipe is in an unknown state
                await self._replace(worker)
                raise
            self._idle.append(worker)
            return reply

    def pids(self) -> list[int]:
        """The process ids of the running workers (for operators and tests)."""
        return [worker.process.pid for worker in self._workers]

    async def _replace(self, worker: _Worker) -> None:
        """Kill ``worker`` and start a warm spare in the background for the next call."""
        self.killed += 1
        self._workers.discard(worker)
        await asyncio.shield(worker.kill())
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._spare())
        self._spares.add(task)
        task.add_done_callback(self._spares.discard)

    async def _start(self) -> _Worker:
        worker = await _Worker.start()
        self._workers.add(worker)
        return worker

    async def _spare(self) -> None:
        if len(self._idle) < self.size:
            try:
                self._idle.append(await self._start())
            except SandboxError as exc:  # the next call starts one itself
                log.warning("a spare SQL worker did not start: %s", exc)

    async def close(self) -> None:
        """Stop every worker: idle ones exit at end of input, busy ones are killed."""
        self._closed = True
        for task in list(self._spares):
            task.cancel()
        await asyncio.gather(*self._spares, return_exceptions=True)
        workers, self._workers, self._idle = self._workers, set(), []
        await asyncio.gather(*(worker.close() for worker in workers))
