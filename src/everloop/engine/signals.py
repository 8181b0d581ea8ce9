"""In-process wake-ups: "a session has new events" and "a turn was cancelled".

A signal is only a hint that saves a poll interval; the database stays the truth, and every
waiter also re-checks on a short timeout (another process may have written).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator


class Signals:
    def __init__(self) -> None:
        self._event_waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._cancel_waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    def events_appended(self, session_id: str) -> None:
        for waiter in self._event_waiters.get(session_id, ()):
            waiter.set()

    async def wait_for_events(self, session_id: str, timeout: float) -> None:
        """Return when events are appended to the session here, or after ``timeout``."""
        await _wait(self._event_waiters, session_id, timeout)

    @contextlib.contextmanager
    def listening(self, session_id: str) -> Iterator[Wakeup]:
        """Collect "events appended" signals of the session for the block: one that comes
        between a check and the wait that follows it is not lost."""
        wakeup = Wakeup()
        self._event_waiters[session_id].add(wakeup.event)
        try:
            yield wakeup
        finally:
            waiters = self._event_waiters.get(session_id)
            if waiters is not None:
                waiters.discard(wakeup.event)
                if not waiters:
                    del self._event_waiters[session_id]

    def turn_cancelled(self, turn_id: str) -> None:
        for waiter in self._cancel_waiters.get(turn_id, ()):
            waiter.set()

    async def wait_for_cancel(self, turn_id: str, timeout: float) -> None:
        await _wait(self._cancel_waiters, turn_id, timeout)


async def _wait(table: defaultdict[str, set[asyncio.Event]], key: str, timeout: float) -> None:
    waiter = asyncio.Event()
    table[key].add(waiter)
    try:
        async with asyncio.timeout(timeout):
            await waiter.wait()
    except TimeoutError:
        pass
    finally:
        table[key].discard(waiter)
        if not table[key]:
            del table[key]


class Wakeup:
    """A registered waiter (see ``Signals.listening``)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def clear(self) -> None:
        self.event.clear()

    async def wait_or(self, timeout: float) -> None:
        """Return once signalled since the last return (or ``clear``), or after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                await self.event.wait()
        except TimeoutError:
            pass
        self.event.clear()
