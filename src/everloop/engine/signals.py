"""In-process wake-ups: "a session has new events" and "a turn was cancelled".

A signal is only a hint that saves a poll interval; the database stays the truth, and every
waiter also re-checks on a short timeout (another process may have written).

Two ways to wait for a session's events: ``wait_for_events`` registers a waiter for one wait
(a signal sent between two waits is not seen: the caller's timeout covers it), and
``watch_events`` keeps a waiter registered until it is closed, so a signal sent while the
watcher was busy (reading the log) is still seen by its next wait. The SSE fan-out
(``services.event_feed``) uses a watch: one per session, whatever the number of streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence

from everloop.domain.event_log import Event


class EventWatch:
    """A standing registration for one session's "events appended" signal.

    ``clear()`` before reading the log, ``wait(timeout)`` after: a signal sent in between is
    kept, so the wait returns at once and the reader reads again.
    """

    def __init__(self, signals: Signals, session_id: str, *more: str) -> None:
        self._signals = signals
        self.session_id = session_id
        self._sessions = (session_id, *more)
        self._woken = asyncio.Event()
        for session in self._sessions:
            signals._event_waiters.setdefault(session, set()).add(self._woken)

    def is_set(self) -> bool:
        return self._woken.is_set()

    def clear(self) -> None:
        self._woken.clear()

    def set(self) -> None:
        """Wake the watcher as if events were appended (used to make it re-check or stop)."""
        self._woken.set()

    async def wait(self, timeout: float) -> bool:
        """Whether a signal came (True) or ``timeout`` passed (False)."""
        try:
            async with asyncio.timeout(timeout):
                await self._woken.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        for session in self._sessions:
            _discard(self._signals._event_waiters, session, self._woken)


class Signals:
    def __init__(self) -> None:
        self._event_waiters: dict[str, set[asyncio.Event]] = {}
        self._cancel_waiters: dict[str, set[asyncio.Event]] = {}

    def events_appended(self, session_id: str) -> None:
        for waiter in self._event_waiters.get(session_id, ()):
            waiter.set()

    def events_committed(self, appended: Sequence[Event]) -> None:
        """A commit listener (``Database.add_commit_listener``): wake the waiters of every
        session a transaction of this process appended to, whichever session it ran for (a
        subagent's ending writes to its parent's log too)."""
        for session_id in {event.session_id for event in appended}:
            self.events_appended(session_id)

    async def wait_for_events(self, session_id: str, timeout: float) -> None:
        """Return when events are appended to the session here, or after ``timeout``."""
        await _wait(self._event_waiters, session_id, timeout)

    def watch_events(self, session_id: str) -> EventWatch:
        """A standing waiter for the session's events; ``close()`` it when done."""
        return EventWatch(self, session_id)

    @contextlib.contextmanager
    def listening(self, session_id: str, *more: str) -> Iterator[EventWatch]:
        """A watch for the block (on one session's events, or any of several): a signal that
        comes between a check and the wait after it is not lost (``EventWatch.wait`` returns at
        once)."""
        watch = EventWatch(self, session_id, *more)
        try:
            yield watch
        finally:
            watch.close()

    def turn_cancelled(self, turn_id: str) -> None:
        for waiter in self._cancel_waiters.get(turn_id, ()):
            waiter.set()

    async def wait_for_cancel(self, turn_id: str, timeout: float) -> None:
        await _wait(self._cancel_waiters, turn_id, timeout)


async def _wait(table: dict[str, set[asyncio.Event]], key: str, timeout: float) -> None:
    waiter = asyncio.Event()
    table.setdefault(key, set()).add(waiter)
    try:
        async with asyncio.timeout(timeout):
            await waiter.wait()
    except TimeoutError:
        pass
    finally:
        _discard(table, key, waiter)


def _discard(table: dict[str, set[asyncio.Event]], key: str, waiter: asyncio.Event) -> None:
    waiters = table.get(key)
    if waiters is None:
        return
    waiters.discard(waiter)
    if not waiters:
        del table[key]
