"""SSE fan-out: one read of the live tail per session, handed to every stream of that session.

The streams here are ``TurnService.stream`` iterated in this process (the HTTP layer on top is
covered by ``tests/e2e/test_sse.py``), over a turn that the in-process engine runs. Every wait
is on the stream itself inside a deadline; nothing sleeps to synchronise, nothing asserts a time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import Any

import pytest
from tests.conftest import Api
from tests.engine.conftest import events, new_session, send, wait_for

from everloop.domain.event_log import EventContext, NewEvent
from everloop.services.auth import Caller
from everloop.services.event_feed import EventFanout
from everloop.services.turns import StreamFrame, TurnService
from everloop.store.event_log import append_events

pytestmark = pytest.mark.timeout(120)

TOOL_TURN = {
    "response": {"type": "fixed", "text": "five"},
    "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
}
LOCATE = {
    "type": "client_side",
    "name": "get_location",
    "description": "Where the user is.",
    "parameters": {"type": "object", "properties": {}},
}
CLIENT_TOOL_TURN = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "where", "name": "get_location", "arguments": {}}],
}
DEADLINE = 60.0


def turns_with(api: Api, fanout: EventFanout) -> TurnService:
    svc = api.services
    return TurnService(svc.db, svc.sessions, svc.engine, svc.signals, fanout)


async def caller_of(api: Api) -> Caller:
    return await api.services.auth.authenticate(f"Bearer {api.token}", None)


class Reader:
    """One stream, read by a task into ``received`` until ``idled`` ``session.idled`` events."""

    def __init__(
        self,
        turns: TurnService,
        caller: Caller,
        session_id: str,
        *,
        idled: int = 1,
        types: Sequence[str] = (),
        exclude: Sequence[str] = (),
        since_id: str | None = None,
        after_sequence: int | None = None,
        hold_after: int | None = None,
        on_batch: Callable[[], object] | None = None,
    ) -> None:
        self.received: list[dict[str, Any]] = []
        self.joined = asyncio.Event()
        self.progress = asyncio.Event()
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self._args = (turns, caller, session_id, types, exclude, since_id, after_sequence)
        self._idled = idled
        self._hold_after = hold_after
        self._on_batch = on_batch
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        turns, caller, session_id, types, exclude, since_id, after_sequence = self._args
        frames = await turns.stream(
            caller,
            session_id,
            since_id=since_id,
            after_sequence=after_sequence,
            types=types,
            exclude=exclude,
            cycle_seconds=3600.0,
            stopping=asyncio.Event(),
        )
        assert isinstance(frames, AsyncIterator)
        seen = 0
        async with aclosing(frames):  # type: ignore[type-var]  # an async generator
            async for frame in self._joining(frames):
                assert frame.kind == "events" and frame.events, frame
                if self._on_batch is not None:
                    self._on_batch()  # what the stream does while it "writes" this batch
                for delivery in frame.events:
                    body = json.loads(delivery.data)
                    assert body == delivery.event.to_json()
                    self.received.append(body)
                    self.progress.set()
                    seen += body["type"] == "session.idled"
                    if seen == self._idled:
                        return
                if self._hold_after is not None and len(self.received) >= self._hold_after:
                    self._hold_after = None
                    self.held.set()
                    await self.release.wait()  # stuck: does not pull the stream meanwhile

    async def _joining(self, frames: AsyncIterator[StreamFrame]) -> AsyncIterator[StreamFrame]:
        # The stream subscribes on its first pull; the pull that starts it is what "joined" means.
        first = asyncio.ensure_future(frames.__anext__())
        await asyncio.sleep(0)
        self.joined.set()
        yield await first
        async for frame in frames:
            yield frame

    async def until(self, count: int) -> None:
        """Return once ``count`` events were received."""
        async with asyncio.timeout(DEADLINE):
            while len(self.received) < count:
                self.progress.clear()
                await self.progress.wait()

    async def until_type(self, event_type: str) -> None:
        """Return once an event of ``event_type`` was received."""
        async with asyncio.timeout(DEADLINE):
            while all(e["type"] != event_type for e in self.received):
                self.progress.clear()
                await self.progress.wait()

    async def done(self) -> list[dict[str, Any]]:
        async with asyncio.timeout(DEADLINE):
            await self.task
        return self.received


def ids_of(found: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in found]


async def test_many_streams_get_the_identical_full_sequence(engine: Api) -> None:
    fanout = EventFanout(engine.services.db, poll_seconds=0.5)
    turns = turns_with(engine, fanout)
    caller = await caller_of(engine)
    sid = await new_session(engine, TOOL_TURN, capabilities=[{"ref": "test_math"}])
    readers = [Reader(turns, caller, sid) for _ in range(40)]
    await asyncio.gather(*(r.joined.wait() for r in readers))
    await send(engine, sid, "please add")
    received = [await r.done() for r in readers]
    log = await events(engine, sid)
    assert log[-1]["type"] == "session.idled"
    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))
    for got in received:
        assert got == log  # same ids, same payloads, same order: nothing lost or repeated
    figures = fanout.counters()
    assert figures["subscribers"] == 0 and figures["feeds"] == 0
    assert figures["subscribed"] == 40
    assert figures["live_deliveries"] > 0
    await fanout.close()


async def test_a_stream_resuming_mid_turn_gets_exactly_the_rest(engine: Api) -> None:
    """The turn pauses on a client-side tool call (deterministically mid-stream); streams
    resuming there by event id and by sequence get exactly the rest once it goes on."""
    fanout = EventFanout(engine.services.db)
    turns = turns_with(engine, fanout)
    caller = await caller_of(engine)
    sid = await new_session(engine, CLIENT_TOOL_TURN, tools=[LOCATE])
    first = Reader(turns, caller, sid)
    await first.joined.wait()
    await send(engine, sid, "where am I?")
    await first.until_type("tool.call_requested")
    cut = first.received[-1]
    by_id = Reader(turns, caller, sid, since_id=cut["id"])
    by_sequence = Reader(turns, caller, sid, after_sequence=cut["sequence"])
    await asyncio.gather(by_id.joined.wait(), by_sequence.joined.wait())
    calls = next(e for e in first.received if e["type"] == "tool.call_requested")
    answered = await engine.client.post(
        f"/v1/sessions/{sid}/tool-results",
        json={
            "tool_results": [
                {"tool_call_id": calls["data"]["tool_calls"][0]["id"], "result": {"city": "Kyiv"}}
            ]
        },
    )
    assert answered.status_code == 200, answered.text
    everything = await first.done()
    log = await events(engine, sid)
    assert everything == log
    rest = [e for e in log if e["sequence"] > cut["sequence"]]
    assert len(rest) > 2 and "tool.completed" in {e["type"] for e in rest}
    assert await by_id.done() == rest
    assert await by_sequence.done() == rest
    await fanout.close()


async def test_filters_apply_per_stream(engine: Api) -> None:
    fanout = EventFanout(engine.services.db)
    turns = turns_with(engine, fanout)
    caller = await caller_of(engine)
    sid = await new_session(engine, TOOL_TURN, capabilities=[{"ref": "test_math"}])
    wanted = ["tool.completed", "turn.completed", "session.idled"]
    dropped = ["output.message.delta", "llm.generation", "tool.started"]
    only = Reader(turns, caller, sid, types=wanted)
    without = Reader(turns, caller, sid, exclude=dropped)
    everything = Reader(turns, caller, sid)
    await asyncio.gather(only.joined.wait(), without.joined.wait(), everything.joined.wait())
    await send(engine, sid, "please add")
    got = await everything.done()
    log = await events(engine, sid)
    assert got == log
    assert ids_of(await only.done()) == [e["id"] for e in log if e["type"] in wanted]
    assert {e["type"] for e in only.received} == set(wanted)
    assert ids_of(await without.done()) == [e["id"] for e in log if e["type"] not in dropped]
    assert "llm.generation" in {e["type"] for e in log}
    await fanout.close()


async def test_a_stuck_stream_does_not_hold_up_the_others(engine: Api) -> None:
    """A stream that stops reading overflows its small buffer; the others get every event,
    and once it reads again it catches up from the table: every event once, in order."""
    fanout = EventFanout(engine.services.db, buffer_events=2)
    turns = turns_with(engine, fanout)
    caller = await caller_of(engine)
    sid = await new_session(engine, TOOL_TURN, capabilities=[{"ref": "test_math"}])
    await send(engine, sid, "please add")
    before = await wait_for(engine, sid, "session.idled")
    stuck = Reader(turns, caller, sid, idled=2, after_sequence=len(before) - 1, hold_after=1)
    async with asyncio.timeout(DEADLINE):
        await stuck.held.wait()
    assert stuck.received == before[-1:]
    others = [Reader(turns, caller, sid, after_sequence=len(before)) for _ in range(5)]
    await asyncio.gather(*(r.joined.wait() for r in others))
    await send(engine, sid, "please add again")
    received = [await r.done() for r in others]  # while the stuck one still holds
    assert not stuck.task.done()
    log = await events(engine, sid)
    second = log[len(before) :]
    assert len(second) > 2 and second[-1]["type"] == "session.idled"
    for got in received:
        assert got == second
    assert fanout.counters()["overflows"] >= 1
    stuck.release.set()
    assert await stuck.done() == log[len(before) - 1 :]
    await fanout.close()


async def reads_for_one_turn(api: Api, streams: int) -> tuple[int, int]:
    """(database reads of the streams, events appended) for one turn followed by ``streams``
    streams that joined before it. Polls are out of the picture (one per hour)."""
    fanout = EventFanout(api.services.db, poll_seconds=3600.0)
    turns = turns_with(api, fanout)
    caller = await caller_of(api)
    sid = await new_session(api, TOOL_TURN, capabilities=[{"ref": "test_math"}])
    start = len(await events(api, sid))
    readers = [Reader(turns, caller, sid) for _ in range(streams)]
    await asyncio.gather(*(r.until(start) for r in readers))  # caught up with the log
    joined = fanout.counters()
    await send(api, sid, "please add")
    for reader in readers:
        await reader.done()
    figures = fanout.counters()
    appended = len(await events(api, sid)) - start
    await fanout.close()
    reads = (figures["tail_reads"] - joined["tail_reads"]) + (
        figures["catchup_reads"] - joined["catchup_reads"]
    )
    # Joining behind the tail costs each stream one catch-up read, at most.
    assert figures["catchup_reads"] <= streams
    return reads, appended


async def test_reads_per_appended_event_do_not_grow_with_the_streams(engine: Api) -> None:
    one_reads, one_events = await reads_for_one_turn(engine, 1)
    many_reads, many_events = await reads_for_one_turn(engine, 50)
    assert one_events == many_events > 5
    # One read per wake-up of the session's tail: at most one per append in this process, plus
    # (PostgreSQL) one per notification of it; never one per stream.
    assert one_reads <= 2 * one_events + 1
    assert many_reads <= 2 * many_events + 1
    # (Reading per stream, as before the fan-out, made at least 50 reads per append here.)


async def test_events_appended_without_a_signal_still_arrive(engine: Api) -> None:
    """An append that signals nobody in this process (another process on SQLite) is found by
    the poll; on PostgreSQL its notification wakes the feed."""
    fanout = EventFanout(engine.services.db, poll_seconds=0.05)
    turns = turns_with(engine, fanout)
    caller = await caller_of(engine)
    sid = await new_session(engine, TOOL_TURN, capabilities=[{"ref": "test_math"}])
    reader = Reader(turns, caller, sid, idled=1)
    await reader.joined.wait()
    async with engine.services.db.write() as conn:
        await append_events(
            conn,
            sid,
            [
                NewEvent("session.activated", {}, EventContext()),
                NewEvent("session.idled", {"turn_id": None}, EventContext()),
            ],
        )
    got = await reader.done()
    assert got == await events(engine, sid)
    assert [e["type"] for e in got][-2:] == ["session.activated", "session.idled"]
    await fanout.close()


async def test_a_watch_keeps_a_signal_sent_while_it_was_busy() -> None:
    from everloop.engine.signals import Signals

    signals = Signals()
    watch = signals.watch_events("s1")
    watch.clear()
    signals.events_appended("s1")  # while the watcher "reads"
    assert await watch.wait(3600.0) is True
    watch.clear()
    assert await watch.wait(0.0) is False
    watch.close()
    signals.events_appended("s1")  # nobody listens any more: no error
    assert signals._event_waiters == {}


async def test_no_connection_is_held_while_streams_wait_or_write(api: Api) -> None:
    """With streams waiting, one stuck and the others handling a batch, no app-database
    connection is in use by a transaction: reads are short and never span a wait or a write."""
    fanout = EventFanout(api.services.db, poll_seconds=3600.0)
    turns = turns_with(api, fanout)
    caller = await caller_of(api)
    sid = await new_session(api)
    live = False
    checked_out: list[int] = []

    def on_batch() -> None:
        if live:
            checked_out.append(api.services.db.in_use)

    start = len(await events(api, sid))
    stuck = Reader(turns, caller, sid, hold_after=start)
    readers = [Reader(turns, caller, sid, on_batch=on_batch) for _ in range(10)]
    await asyncio.gather(stuck.held.wait(), *(r.until(start) for r in readers))
    assert api.services.db.in_use == 0
    live = True
    context = EventContext()
    async with api.services.db.write() as conn:
        await append_events(
            conn,
            sid,
            [
                NewEvent("session.activated", {}, context),
                NewEvent("session.idled", {"turn_id": None}, context),
            ],
        )
    api.services.signals.events_appended(sid)
    for reader in readers:
        await reader.done()
    assert checked_out and set(checked_out) == {0}
    stuck.release.set()
    assert await stuck.done() == await events(api, sid)
    assert api.services.db.in_use == 0
    await fanout.close()
