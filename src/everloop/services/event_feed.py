"""The live tail of each session's event log, read once per process and fanned out to streams.

A *feed* exists per session while at least one stream follows it. Events this process commits
are handed to it by the committing transaction (``Database.add_commit_listener``): when they
continue its tail it publishes them without reading anything. Its reader task reads the events
after its tail only when that did not work (a gap), when another process committed (a
PostgreSQL notification carrying the session and its new last sequence), or every
``poll_seconds`` (the fallback: the log is the truth, wake-ups are hints). Each new event is
serialised once, then appended to every subscriber's buffer. So the database reads per appended
event do not depend on how many streams follow the session (and are none for this process's own
commits).

A *subscriber* (one SSE stream) has its own cursor: the sequence of the last event it handed
out. It takes events from its buffer only when they continue its cursor exactly (sequence
``cursor + 1``); events at or below the cursor are dropped. Whenever its buffer does not
continue the cursor while the feed is ahead (it just joined with an older cursor, or its buffer
overflowed), it reads a page from the table after its own cursor instead: catch-up reads are
per subscriber, the live tail is shared. Sequences are gapless and committed in order
(``store.event_log``), so a subscriber hands out every durable event after its cursor exactly
once, in order.

A buffer is bounded (``buffer_events``): a subscriber that does not keep up (its client is not
reading) has its buffer dropped and later catches up from the table; it never blocks the feed
or the other subscribers. No database connection is held while waiting or while a stream
writes to its client: every read is one short ``Database.read()``.

``counters()`` reports the reads and deliveries of this process (for the opt-in debug endpoint,
``EVERLOOP_DEBUG_COUNTERS``, and the fan-out benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from everloop.domain.event_log import Event
from everloop.store.db import Database
from everloop.store.event_log import EventQuery, last_sequence, read_events

log = logging.getLogger("everloop.event_feed")

PAGE = 500
BUFFER_EVENTS = 1000
RETRY_SECONDS = 1.0


class Stopping(Protocol):
    """Set when the server shuts down (an ``asyncio.Event`` or ``anyio.Event``)."""

    def is_set(self) -> bool: ...

    async def wait(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for a stream, with its wire JSON (serialised once per event for the live tail)."""

    event: Event
    data: str


def wire(event: Event) -> Delivery:
    return Delivery(event, json.dumps(event.to_json(), separators=(",", ":")))


@dataclass(slots=True)
class Counters:
    """What the streams of this process read and delivered since start."""

    tail_reads: int = 0  # reads by feeds (shared), including the first "where is the tail" read
    tail_reads_empty: int = 0  # of those, reads that found nothing new (poll, duplicate wake-up)
    catchup_reads: int = 0  # reads by one subscriber from its own cursor (join, overflow)
    events_read: int = 0  # events read by feeds, each once per process
    events_handed: int = 0  # events a feed got from the committing transaction, not read
    live_deliveries: int = 0  # events handed to a stream from its buffer
    catchup_deliveries: int = 0  # events handed to a stream from its own reads
    overflows: int = 0  # buffers dropped because their stream did not keep up
    subscribed: int = 0  # streams that followed a feed, in total


class _Subscriber:
    __slots__ = ("buffer", "cursor", "feed", "wake")

    def __init__(self, feed: _Feed, cursor: int) -> None:
        self.feed = feed
        self.cursor = cursor
        self.buffer: deque[Delivery] = deque()
        self.wake = asyncio.Event()

    def take(self) -> list[Delivery]:
        """The buffered events that continue the cursor (and drops those already handed out)."""
        buffer = self.buffer
        while buffer and buffer[0].event.sequence <= self.cursor:
            buffer.popleft()
        if not buffer or buffer[0].event.sequence != self.cursor + 1:
            return []
        taken = list(buffer)
        buffer.clear()
        return taken

    def behind(self) -> bool:
        """Whether events after the cursor are committed that the buffer cannot give."""
        tail = self.feed.tail
        return tail is not None and self.cursor < tail


class _Wake:
    """The feed's wake-up: set by a commit this process could not hand over, a notification
    from another process, or to stop. ``clear()`` before reading, ``wait()`` after."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def clear(self) -> None:
        self._event.clear()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._event.set()


class _Feed:
    __slots__ = ("closed", "session_id", "subscribers", "tail", "task", "watch")

    def __init__(self, session_id: str, watch: _Wake) -> None:
        self.session_id = session_id
        self.watch = watch
        self.subscribers: set[_Subscriber] = set()
        self.tail: int | None = None  # the last sequence this feed read; None until it knows
        self.closed = False
        self.task: asyncio.Task[None] | None = None


class EventFanout:
    """The live tails of the sessions this process streams (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        poll_seconds: float = 0.5,
        buffer_events: int = BUFFER_EVENTS,
        page: int = PAGE,
    ) -> None:
        self._db = db
        self._poll_seconds = poll_seconds
        self._buffer_events = buffer_events
        self._page = page
        self._feeds: dict[str, _Feed] = {}
        self._counters = Counters()
        db.add_commit_listener(self.committed)

    def counters(self) -> dict[str, int]:
        figures = asdict(self._counters)
        figures["feeds"] = len(self._feeds)
        figures["subscribers"] = sum(len(f.subscribers) for f in self._feeds.values())
        return figures

    async def follow(
        self, session_id: str, cursor: int, *, until: float, stopping: Stopping
    ) -> AsyncGenerator[list[Delivery], None]:
        """Every event after ``cursor``, in order, then live ones, until the monotonic deadline
        ``until`` passes or ``stopping`` is set (checked between batches).

        Yields batches: what one read of the tail (or one catch-up page) brought, so a stream
        writes to its client once per batch rather than once per event."""
        sub = self._join(session_id, cursor)
        waker = asyncio.create_task(_set_when(stopping, sub.wake))
        try:
            while True:
                batch = sub.take()
                if batch:
                    self._counters.live_deliveries += len(batch)
                elif sub.behind():
                    page = await self._read(session_id, sub.cursor, self._page)
                    self._counters.catchup_reads += 1
                    self._counters.catchup_deliveries += len(page)
                    batch = [wire(event) for event in page]
                if batch:
                    sub.cursor = batch[-1].event.sequence
                    yield batch
                    if stopping.is_set() or time.monotonic() >= until:
                        return
                    continue
                if stopping.is_set():
                    return
                left = until - time.monotonic()
                if left <= 0:
                    return
                # Nothing to hand out: sleep until the feed publishes (no await since the
                # checks above, so nothing was published in between).
                sub.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await sub.wake.wait()
        finally:
            waker.cancel()
            self._leave(sub)

    async def close(self) -> None:
        """Stop every feed (at shutdown)."""
        feeds = list(self._feeds.values())
        self._feeds.clear()
        for feed in feeds:
            feed.closed = True
            feed.watch.set()
        tasks = [f.task for f in feeds if f.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def committed(self, appended: Sequence[Event]) -> None:
        """Events this process just committed (``Database`` calls this after each write
        transaction): a feed whose tail they continue publishes them as they are, without
        reading them back; any other feed of their session is woken to read."""
        by_session: dict[str, list[Event]] = {}
        for event in appended:
            by_session.setdefault(event.session_id, []).append(event)
        for session_id, found in by_session.items():
            feed = self._feeds.get(session_id)
            if feed is None or feed.closed:
                continue
            found.sort(key=lambda e: e.sequence)
            if feed.tail is not None and found[0].sequence == feed.tail + 1:
                self._counters.events_handed += len(found)
                self._publish(feed, found)
            else:
                feed.watch.set()

    def notified(self, session_id: str, sequence: int | None) -> None:
        """Another process (or this one, echoed by PostgreSQL) committed events of the session
        up to ``sequence`` (None: unknown): wake its feed unless it has them already."""
        feed = self._feeds.get(session_id)
        if feed is None or feed.closed:
            return
        if sequence is None or feed.tail is None or sequence > feed.tail:
            feed.watch.set()

    def _join(self, session_id: str, cursor: int) -> _Subscriber:
        feed = self._feeds.get(session_id)
        if feed is None:
            feed = _Feed(session_id, _Wake())
            self._feeds[session_id] = feed
            feed.task = asyncio.create_task(self._run(feed), name=f"everloop-feed-{session_id}")
        sub = _Subscriber(feed, cursor)
        feed.subscribers.add(sub)
        self._counters.subscribed += 1
        return sub

    def _leave(self, sub: _Subscriber) -> None:
        feed = sub.feed
        feed.subscribers.discard(sub)
        if not feed.subscribers and not feed.closed:
            # The last one left: the feed stops. A stream that joins later starts a new one.
            feed.closed = True
            if self._feeds.get(feed.session_id) is feed:
                del self._feeds[feed.session_id]
            feed.watch.set()

    async def _run(self, feed: _Feed) -> None:
        watch = feed.watch
        try:
            while not feed.closed:
                try:
                    await self._follow_tail(feed)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning(
                        "reading the events of %s failed; retrying", feed.session_id, exc_info=True
                    )
                    await watch.wait(RETRY_SECONDS)
        finally:
            watch.close()

    async def _follow_tail(self, feed: _Feed) -> None:
        watch = feed.watch
        if feed.tail is None:
            watch.clear()
            async with self._db.read() as conn:
                tail = await last_sequence(conn, feed.session_id)
            self._counters.tail_reads += 1
            feed.tail = tail
            for sub in feed.subscribers:
                sub.wake.set()
        while not feed.closed:
            # Clear before reading: a signal that comes during the read is kept for the wait.
            watch.clear()
            page = await self._read(feed.session_id, feed.tail, self._page)
            self._counters.tail_reads += 1
            self._counters.events_read += len(page)
            if page:
                self._publish(feed, page)
                if len(page) == self._page:
                    continue
            else:
                self._counters.tail_reads_empty += 1
            if feed.closed:
                return
            await watch.wait(self._poll_seconds)

    def _publish(self, feed: _Feed, page: list[Event]) -> None:
        if feed.tail is not None:
            # A read that raced a hand-over (or the other way round) brings some events twice.
            page = [event for event in page if event.sequence > feed.tail]
            if not page:
                return
        feed.tail = page[-1].sequence
        deliveries = [wire(event) for event in page]
        limit = self._buffer_events
        for sub in feed.subscribers:
            if len(sub.buffer) + len(deliveries) > limit:
                # It does not keep up: drop what it has; it reads from its cursor instead.
                sub.buffer.clear()
                self._counters.overflows += 1
            else:
                sub.buffer.extend(deliveries)
            sub.wake.set()

    async def _read(self, session_id: str, after: int, limit: int) -> list[Event]:
        # Read unfiltered, so cursors advance past events a stream filters out.
        async with self._db.read() as conn:
            return await read_events(
                conn, session_id, EventQuery(after_sequence=after, limit=limit)
            )


async def _set_when(stopping: Stopping, wake: asyncio.Event) -> None:
    await stopping.wait()
    wake.set()


__all__ = ["Counters", "Delivery", "EventFanout", "Stopping", "wire"]
