"""DBOS as the durable engine: configuration, launch, starting turns, waking waiting turns.

Each turn is one workflow (workflow id = turn id). A process that executes turns starts the
workflow directly; an API-only process enqueues it on the queue ``turns`` that workers listen
on (through ``DBOSClient``). Either way the start is idempotent by turn id.

One turn at a time per session, in order: a turn's first step claims the session in the app
database (it must be the session's earliest open turn); a turn that cannot claim yet waits
until the session's log moves (the turn before it ends with events) and tries again. A message
posted while a turn runs therefore becomes the next turn; it is never injected into the running
one. See docs/architecture.md for why this replaced a partitioned DBOS queue.

The workflow has no DBOS steps: each phase of a turn records its own result in the app
database in the same commit as its writes (``engine.steps``), so DBOS checkpoints only the
workflow's start and end, and recovers a workflow that did not end.

On SQLite the system database runs in WAL mode with ``synchronous=NORMAL``: a commit survives a
crash of the process (``kill -9``) but not necessarily a power loss of the machine. Use
PostgreSQL where that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import (
    DBOS,
    DBOSClient,
    DBOSConfig,
    DBOSPortableJSONSerializer,
    EnqueueOptions,
    SetWorkflowID,
)

from everloop.engine.executor_claim import claim_executor_id
from everloop.engine.ports import TurnRunner
from everloop.engine.runner import RUN_TURN_WORKFLOW

log = logging.getLogger("everloop.engine")

TURN_QUEUE = "turns"


class DurableEngine:
    """One process's DBOS executor (``launch``) and/or client (``connect``)."""

    def __init__(
        self,
        *,
        system_database_url: str,
        application_version: str,
        executor_id: str,
        queue_poll_seconds: float,
        worker_concurrency: int | None = None,
        pool_size: int = 10,
    ) -> None:
        self.system_database_url = system_database_url
        self.application_version = application_version
        self.executor_id = executor_id
        self.queue_poll_seconds = queue_poll_seconds
        self.worker_concurrency = worker_concurrency
        self.pool_size = pool_size
        self._client: DBOSClient | None = None
        self._claim: Any = None  # the connection that holds this executor id (PostgreSQL)
        self._launched = False
        self._workflow: Any = None
        # The turn workflows running in this process, cancelled at close before DBOS stops.
        self._running: set[asyncio.Task[Any]] = set()

    def _config(self) -> DBOSConfig:
        config: DBOSConfig = {
            "name": "everloop",
            "system_database_url": self.system_database_url,
            "application_version": self.application_version,
            "executor_id": self.executor_id,
            "log_level": "WARNING",
            # Turns use no DBOS messages or events (they wake on the app's own signals), so
            # the listener that polls for them on SQLite can be slower (it also bounds how
            # long shutdown waits for that thread).
            "notification_listener_polling_interval_sec": 0.2,
            "serializer": DBOSPortableJSONSerializer(),
            "sys_db_pool_size": self.pool_size,
        }
        if self.system_database_url.startswith("sqlite"):
            config["system_database_engine"] = _sqlite_system_engine(self.system_database_url)
        else:
            # DBOS pings every system-database connection it checks out (a round trip more
            # for each of a turn's workflow writes); a connection that died is refused by its
            # statement instead, invalidated by SQLAlchemy and retried by DBOS's db_retry.
            config["db_engine_kwargs"] = {"pool_pre_ping": False}
            # The notifier thread flushes DBOS stream/event notifications every interval (10 ms
            # by default, waking the process 100 times a second); turns use neither.
            config["notification_coalesce_sec"] = 0.1
        return config

    async def launch(self, runner: TurnRunner, *, listen_queue: bool = True) -> None:
        """Start this process's executor: register the turn workflow and (``listen_queue``)
        take turns from the queue that API-only processes feed. A lone embedded process starts
        its turns directly and has nobody feeding the queue: it does not poll it."""
        if self.system_database_url.startswith("postgresql"):
            # Before DBOS launches, which recovers every pending turn recorded under this id.
            self._claim = await asyncio.to_thread(
                claim_executor_id, self.system_database_url, self.executor_id
            )
        _prepare_sqlite(self.system_database_url)
        DBOS(config=self._config())

        running = self._running

        async def run_turn(session_id: str, turn_id: str) -> str:
            task = asyncio.current_task()
            assert task is not None
            running.add(task)
            try:
                return await runner.run_turn(session_id, turn_id)
            finally:
                running.discard(task)

        self._workflow = DBOS.workflow(name=RUN_TURN_WORKFLOW)(run_turn)
        DBOS.launch()
        self._launched = True
        if not listen_queue:
            log.info("durable engine launched (executor %s)", self.executor_id)
            return
        await DBOS.register_queue_async(
            TURN_QUEUE,
            worker_concurrency=self.worker_concurrency,
            polling_interval_sec=self.queue_poll_seconds,
        )
        log.info("durable engine launched (executor %s)", self.executor_id)

    async def connect(self) -> None:
        """Open the client the API uses to enqueue work."""
        if self._client is None:
            self._client = await asyncio.to_thread(
                DBOSClient,
                system_database_url=self.system_database_url,
                serializer=DBOSPortableJSONSerializer(),
                system_database_pool_size=self.pool_size,
            )

    async def enqueue_turn(self, session_id: str, turn_id: str) -> None:
        """Start a turn's workflow (here, or on a worker); a second start of one turn is a no-op."""
        if self._launched:
            # In a fresh context: a turn started from inside another turn's workflow (a
            # subagent's, by its parent) is then an independent workflow, not a DBOS child of
            # the parent's, whose recovery would depend on the order the parent started them.
            start = asyncio.get_running_loop().create_task(
                self._start(session_id, turn_id), context=contextvars.Context()
            )
            self._running.add(start)
            try:
                await start
            finally:
                self._running.discard(start)
            return
        options: EnqueueOptions = {
            "workflow_name": RUN_TURN_WORKFLOW,
            "queue_name": TURN_QUEUE,
            "workflow_id": turn_id,
            "app_version": self.application_version,
        }
        assert self._client is not None, "connect() first"
        await self._client.enqueue_async(options, session_id, turn_id)

    async def _start(self, session_id: str, turn_id: str) -> None:
        with SetWorkflowID(turn_id):
            await DBOS.start_workflow_async(self._workflow, session_id, turn_id)

    async def ping(self) -> bool:
        """Whether the system database answers."""
        try:
            if self._launched:
                await DBOS.list_workflows_async(limit=1)
            elif self._client is not None:
                await self._client.list_workflows_async(limit=1)
            else:
                return False
        except Exception:
            return False
        return True

    async def recover(self, executor_ids: list[str]) -> int:
        """Hand the pending turns of dead executors back to the queues; how many."""
        if not self._launched:
            return 0
        handles = await asyncio.to_thread(DBOS._recover_pending_workflows, executor_ids)
        return len(handles)

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.destroy)
            self._client = None
        if self._launched:
            # Stop this process's running turns first, and wait for them: DBOS leaves a
            # cancelled workflow PENDING (the next executor on this id, or a peer's recovery,
            # resumes it from its records), and a turn left running past DBOS.destroy and the
            # app database's close would go on using both (seen as connections opened by a
            # turn after its pool closed).
            await _cancel_all(self._running)
            # Workflows are registered at launch, never at import: drop the registry with it.
            await asyncio.to_thread(DBOS.destroy, destroy_registry=True)
            self._launched = False
        if self._claim is not None:
            # Last, once DBOS has stopped (it also stops the loop's default executor): a
            # process that claims the id from now on finds no turn of this one still running.
            self._claim.close()
            self._claim = None


async def _cancel_all(tasks: set[asyncio.Task[Any]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    tasks.clear()


def _sqlite_system_engine(url: str) -> sa.Engine:
    """DBOS's own SQLite settings (IMMEDIATE transactions, long busy timeout), plus WAL-friendly
    ``synchronous=NORMAL`` so a commit does not wait for an fsync."""
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    return engine


def _prepare_sqlite(url: str) -> None:
    """Put a new SQLite system database in WAL mode (it persists in the file)."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
