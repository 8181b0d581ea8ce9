"""DBOS as the durable engine: configuration, launch, the turn queue, and enqueueing.

Turns run on the queue ``turns``, partitioned by session with ``partition_concurrency=1``: one
turn at a time per session, in order of arrival, across every executor. A message posted while a
turn runs becomes the next turn (it is never delivered into the running one).

The API side only ever enqueues through ``DBOSClient`` (also in the embedded process), so the
embedded mode and the scale-out mode run the same code.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSClient, DBOSConfig, DBOSPortableJSONSerializer, EnqueueOptions

from everloop.engine.runner import RUN_TURN_WORKFLOW, TurnRunner

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
    ) -> None:
        self.system_database_url = system_database_url
        self.application_version = application_version
        self.executor_id = executor_id
        self.queue_poll_seconds = queue_poll_seconds
        self.worker_concurrency = worker_concurrency
        self._client: DBOSClient | None = None
        self._launched = False

    def _config(self) -> DBOSConfig:
        config: DBOSConfig = {
            "name": "everloop",
            "system_database_url": self.system_database_url,
            "application_version": self.application_version,
            "executor_id": self.executor_id,
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.01,
            "serializer": DBOSPortableJSONSerializer(),
        }
        return config

    async def launch(self, runner: TurnRunner) -> None:
        """Start this process's executor: register the turn workflow and listen on the queue."""
        _prepare_sqlite(self.system_database_url)
        DBOS(config=self._config())

        def step(name: str, fn: Any) -> Any:
            async def call(*args: Any) -> Any:
                return await fn(*args)

            call.__qualname__ = call.__name__ = name
            return DBOS.step(name=name)(call)

        runner.wrap_steps(step)

        async def run_turn(session_id: str, turn_id: str) -> str:
            return await runner.run_turn(session_id, turn_id)

        DBOS.workflow(name=RUN_TURN_WORKFLOW)(run_turn)
        DBOS.launch()
        self._launched = True
        await DBOS.register_queue_async(
            TURN_QUEUE,
            partition_concurrency=1,
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
            )

    async def enqueue_turn(self, session_id: str, turn_id: str) -> None:
        """Enqueue a turn; enqueueing the same turn id again is a no-op."""
        assert self._client is not None, "connect() first"
        options: EnqueueOptions = {
            "workflow_name": RUN_TURN_WORKFLOW,
            "queue_name": TURN_QUEUE,
            "workflow_id": turn_id,
            "queue_partition_key": session_id,
            "app_version": self.application_version,
        }
        await self._client.enqueue_async(options, session_id, turn_id)

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.destroy)
            self._client = None
        if self._launched:
            # Workflows are registered at launch, never at import: drop the registry with it.
            await asyncio.to_thread(DBOS.destroy, destroy_registry=True)
            self._launched = False


def _prepare_sqlite(url: str) -> None:
    """Put a new SQLite system database in WAL mode (it persists in the file)."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
