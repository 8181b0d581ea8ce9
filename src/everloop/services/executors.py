"""The executors of the durable engine, as ``/api/v1/durable/workers`` shows them."""

from __future__ import annotations

from everloop.errors import NotFound
from everloop.services.auth import Caller
from everloop.store import workers as worker_store
from everloop.store.db import Database
from everloop.store.workers import WorkerRow


class ExecutorService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self, caller: Caller) -> list[WorkerRow]:
        """Every executor that has registered, newest first, with its last heartbeat.

        Host names, pids and running turns describe the whole instance, not one tenant: only
        its operators see them; to anyone else the list does not exist (404)."""
        if not caller.is_operator:
            raise NotFound(
                "no such route for this organization: the durable workers are shown to "
                "the operators of this instance only"
            )
        async with self._db.read() as conn:
            return await worker_store.all_workers(conn)
