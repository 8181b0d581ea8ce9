"""Cross-process wake-ups on PostgreSQL: ``NOTIFY everloop_events, '<session id>'``.

The event log appends ``pg_notify`` in the transaction that writes the events, so the
notification is delivered when (and only if) they commit. Each API process listens and turns
notifications into in-process signals; the table stays the truth and streams still poll as a
fallback, so a lost notification only delays a stream by one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg

CHANNEL = "everloop_events"
log = logging.getLogger("everloop.notifications")


def parse(payload: str) -> tuple[str, int | None]:
    """``"<session id> <last sequence>"`` -> (session id, sequence); a payload of an earlier
    version (the session id alone) gives no sequence."""
    session_id, _, sequence = payload.partition(" ")
    return session_id, int(sequence) if sequence.isdigit() else None


class EventListener:
    """Listens on the events channel in the background and calls ``on_event(session_id)``."""

    def __init__(self, database_url: str, on_event: Callable[[str], None]) -> None:
        self._dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
        self._on_event = on_event
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="everloop-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for note in conn.notifies():
                        self._on_event(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event listener lost its connection; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)
