"""The executors of the durable engine, as ``/api/v1/durable/workers`` shows them."""

from __future__ import annotations

from everloop.store import workers as worker_store
from everloop.store.db import Database
from everloop.store.workers import WorkerRow


class ExecutorService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self) -> list[WorkerRow]:
        """Every executor that has registered, newest first, with its last heartbeat."""
        async with self._db.read() as conn:
            return await worker_store.all_workers(conn)
