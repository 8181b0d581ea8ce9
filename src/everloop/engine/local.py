"""The embedded engine: turns run as tasks of the one ``everloop serve`` process (SQLite).

A turn's durability does not come from DBOS in this mode but from the app database, as it does
in every mode: the turn is recorded (``turns``, its input event) before it starts, every step
records its result in the same commit as its writes (``engine.steps``), and at start the sweep
starts every turn that is still open (``TurnService.enqueue_recorded``). A turn interrupted by a
crash therefore continues after the restart exactly where its records end.

On PostgreSQL, where several processes share the work, DBOS runs turns
(``engine.durable``): its queue carries turns from API-only processes to workers, and the
workers recover the turns of a worker that died. With one process on one SQLite file there is
nobody to hand work to, and DBOS only added a thread hop and a system-database commit at each
end of every turn (measured: docs/benchmarks.md, "Turns").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from everloop.engine.ports import TurnRunner

log = logging.getLogger("everloop.engine")


class LocalEngine:
    """Starts turns as tasks of this process; a second start of a running turn is a no-op."""

    def __init__(self, *, executor_id: str, application_version: str) -> None:
        self.executor_id = executor_id
        self.application_version = application_version
        self._runner: TurnRunner | None = None
        self._tasks: dict[str, asyncio.Task[str]] = {}
        self._closing = False

    async def launch(self, runner: TurnRunner, *, listen_queue: bool = False) -> None:
        self._runner = runner
        self._closing = False
        log.debug("embedded engine started (executor %s)", self.executor_id)

    async def connect(self) -> None:
        return None

    async def enqueue_turn(self, session_id: str, turn_id: str) -> None:
        if self._runner is None:
            raise RuntimeError("the engine is not started: turns are started at the next start")
        if self._closing or turn_id in self._tasks:
            return
        task = asyncio.create_task(
            self._runner.run_turn(session_id, turn_id), name=f"everloop-turn-{turn_id}"
        )
        self._tasks[turn_id] = task
        task.add_done_callback(lambda done: self._finished(turn_id, done))

    def _finished(self, turn_id: str, task: asyncio.Task[str]) -> None:
        self._tasks.pop(turn_id, None)
        if not task.cancelled() and task.exception() is not None:
            # The turn stays open in the database; the next start runs it again.
            log.error("turn %s stopped on an error", turn_id, exc_info=task.exception())

    async def ping(self) -> bool:
        return self._runner is not None and not self._closing

    async def recover(self, executor_ids: list[str]) -> int:
        # One process per data dir: its open turns restart with it (the start-up sweep).
        return 0

    async def close(self) -> None:
        """Stop the running turns; they are open in the database and resume at the next
        start."""
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._runner = None
