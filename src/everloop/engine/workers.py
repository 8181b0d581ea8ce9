"""Executor lifecycle: register, heartbeat, and recover the turns of executors that died.

Every executing process (``serve`` or ``worker``) heartbeats into the ``workers`` table. One of
them is the leader (on PostgreSQL: whoever holds an advisory lock; on SQLite there is one
machine, so the one process leads): when an executor has been silent for longer than
``dead_after_seconds`` the leader hands its pending turns back to DBOS
(``DBOS._recover_pending_workflows``), which re-enqueues them for any live executor. DBOS's own
step checkpoints and our ``turn_effects`` records make sure a resumed turn repeats no completed
step, and only one executor can own a workflow at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.timestamps import format_ts, now
from everloop.engine.ports import TurnEngine
from everloop.engine.runner import TurnRunner
from everloop.store import workers as worker_store
from everloop.store.db import Database
from everloop.telemetry import metrics

log = logging.getLogger("everloop.workers")

REAPER_LOCK = 7_206_215_303  # an arbitrary, fixed advisory-lock key for the reaper


class WorkerLifecycle:
    def __init__(
        self,
        db: Database,
        engine: TurnEngine,
        runner: TurnRunner,
        *,
        role: str,
        heartbeat_seconds: float,
        dead_after_seconds: float,
    ) -> None:
        self._db = db
        self._engine = engine
        self._runner = runner
        self._role = role
        self._heartbeat_seconds = heartbeat_seconds
        self._dead_after = timedelta(seconds=dead_after_seconds)
        self._task: asyncio.Task[None] | None = None
        self._leader_conn: AsyncConnection | None = None

    @property
    def executor_id(self) -> str:
        return self._engine.executor_id

    async def start(self) -> None:
        ts = now()
        row = worker_store.WorkerRow(
            executor_id=self.executor_id,
            role=self._role,
            hostname=platform.node() or "unknown",
            pid=os.getpid(),
            application_version=self._engine.application_version,
            started_at=ts,
            heartbeat_at=ts,
            running_turns=0,
            stopped_at=None,
            recovered_at=None,
            recovered_by=None,
        )
        async with self._db.write() as conn:
            await worker_store.register(conn, row)
        self._task = asyncio.create_task(self._run(), name="everloop-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._resign()
        async with self._db.write() as conn:
            await worker_store.mark_stopped(conn, self.executor_id, now())

    async def _run(self) -> None:
        while True:
            try:
                async with self._db.write() as conn:
                    await worker_store.heartbeat(
                        conn, self.executor_id, now(), self._runner.active_turns
                    )
                if await self._lead():
                    await self.reap()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep heartbeating through a passing database error
                log.exception("heartbeat failed")
            await asyncio.sleep(self._heartbeat_seconds)

    async def reap(self) -> list[str]:
        """Recover the pending turns of every executor silent for too long; their ids."""
        cutoff = format_ts(datetime.now(UTC) - self._dead_after)
        async with self._db.read() as conn:
            silent = await worker_store.silent_since(conn, cutoff)
        recovered = []
        for worker in silent:
            if worker.executor_id == self.executor_id:
                continue
            count = await self._engine.recover([worker.executor_id])
            metrics.TURNS_RECOVERED.inc(count)
            async with self._db.write() as conn:
                if await worker_store.mark_recovered(
                    conn, worker.executor_id, self.executor_id, now()
                ):
                    recovered.append(worker.executor_id)
                    log.warning(
                        "executor %s silent since %s: %d pending turn(s) handed to live executors",
                        worker.executor_id,
                        worker.heartbeat_at,
                        count,
                    )
        return recovered

    async def _lead(self) -> bool:
        if self._db.is_sqlite:
            return True
        if self._leader_conn is not None:
            return True
        conn = await self._db.engine.connect()
        got = await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": REAPER_LOCK})
        await conn.commit()
        if got:
            self._leader_conn = conn  # the lock lives as long as this session
            return True
        await conn.close()
        return False

    async def _resign(self) -> None:
        if self._leader_conn is not None:
            with contextlib.suppress(Exception):
                await self._leader_conn.close()
            self._leader_conn = None
