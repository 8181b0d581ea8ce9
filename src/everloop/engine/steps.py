"""What a turn's steps return, and how each step's writes happen exactly once.

A step is a phase of a turn that pairs side effects (a model call, a tool call) with one
database transaction. Its result is one of a few tagged values below, never a loose dict. Every
step transaction records its result in ``turn_effects`` under a key (turn id, step key) in the
same commit as its writes, and first looks for that record: a step re-run after a crash (the
turn's workflow is recovered and runs again from the top) finds the recorded result instead of
calling the model or the tool again and instead of writing twice. This is what makes a turn's
effects exactly-once; DBOS only has to know that the turn's workflow exists and is unfinished
(see docs/architecture.md, "Exactly once").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.event_log import EventContext
from everloop.domain.messages import (
    JsonObject,
    JsonValue,
    Message,
    ToolCallPart,
    ToolResultPart,
    part_from_json,
    part_to_json,
)
from everloop.engine import loop
from everloop.engine.context import TurnContext
from everloop.engine.signals import Signals
from everloop.errors import EverloopError
from everloop.store import turns as turn_store
from everloop.store.db import Database
from everloop.store.event_log import TurnGuard
from everloop.store.event_log import TurnHalted as TurnHalted

log = logging.getLogger("everloop.engine")


@dataclass(frozen=True, slots=True)
class Halted:
    """The turn stopped outside this step (cancelled, failed, gone): nothing more to do."""

    reason: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """An earlier turn of the session is still open: wait for it, then try again."""


@dataclass(frozen=True, slots=True)
class Advanced:
    """The turn moved on to ``state`` (which may be its end: completed or failed)."""

    state: loop.TurnState


@dataclass(frozen=True, slots=True)
class Opened:
    """A reason phase is open: its events are written and the model may be called."""

    state: loop.TurnState
    message_id: str
    replayed: bool = False  # read back from its record: the answer may be recorded too


@dataclass(frozen=True, slots=True)
class ToolDone:
    """A server-side tool call finished (successfully or not) and is recorded."""

    result: ToolResultPart


@dataclass(frozen=True, slots=True)
class ClientAnswered:
    """Every call of the act phase that waited outside the turn has an outcome: ``results``
    (client-side calls, questions, denied approvals) and the ids of the ``approved`` calls,
    which run now."""

    results: tuple[ToolResultPart, ...]
    approved: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClientPending:
    """Client-side calls are still unanswered; the earliest deadline is ``seconds`` away."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Delegated:
    """A delegating tool call began (``capabilities.base.Delegation``): a child turn to start
    and either its answer now (``done``) or a task to wait for until ``deadline``."""

    task_id: str
    name: str
    child_session_id: str
    start_turn_id: str | None
    deadline: str | None
    done: ToolResultPart | None


StepResult: TypeAlias = (
    Halted | Waiting | Advanced | Opened | ToolDone | ClientAnswered | ClientPending | Delegated
)


def encode(result: StepResult) -> JsonObject:
    """A step result as stored in ``turn_effects`` (states without the session history)."""
    match result:
        case Halted(reason=reason):
            return {"kind": "halted", "reason": reason}
        case Advanced(state=state):
            return {"kind": "advanced", "state": state.to_json(with_history=False)}
        case Opened(state=state, message_id=message_id):
            return {
                "kind": "opened",
                "state": state.to_json(with_history=False),
                "message_id": message_id,
            }
        case ToolDone(result=part):
            return {"kind": "tool_done", "result": part_to_json(part)}
        case Delegated(done=done):
            return {
                "kind": "delegated",
                "task_id": result.task_id,
                "name": result.name,
                "child_session_id": result.child_session_id,
                "start_turn_id": result.start_turn_id,
                "deadline": result.deadline,
                "done": None if done is None else part_to_json(done),
            }
        case Waiting() | ClientAnswered() | ClientPending():
            raise AssertionError(f"{type(result).__name__} is never recorded")


def basis_of(value: JsonValue) -> str | None:
    """The compaction checkpoint a recorded state's history is read from (``TurnState.basis``)."""
    state = value.get("state") if isinstance(value, dict) else None
    basis = state.get("basis") if isinstance(state, dict) else None
    return basis if isinstance(basis, str) else None


def decode(value: JsonValue, history: tuple[Message, ...]) -> StepResult:
    """A recorded step result; ``history`` is the session history before the turn."""
    assert isinstance(value, dict), value
    kind = value.get("kind")
    if kind == "halted":
        return Halted(str(value["reason"]))
    if kind == "advanced":
        return Advanced(loop.TurnState.from_json(value["state"], history))
    if kind == "opened":
        state = loop.TurnState.from_json(value["state"], history)
        return Opened(state, str(value["message_id"]))
    if kind == "tool_done":
        return ToolDone(result_from_json(value["result"]))
    if kind == "delegated":
        done = value.get("done")
        return Delegated(
            str(value["task_id"]),
            str(value["name"]),
            str(value["child_session_id"]),
            _opt_str(value.get("start_turn_id")),
            _opt_str(value.get("deadline")),
            None if done is None else result_from_json(done),
        )
    if kind is None:  # recorded by an earlier version (states with their history)
        if "halted" in value:
            return Halted(str(value["halted"]))
        if "result" in value:
            return ToolDone(result_from_json(value["result"]))
        state = loop.TurnState.from_json(value["state"], history)
        if "message_id" in value:
            return Opened(state, str(value["message_id"]))
        return Advanced(state)
    raise ValueError(f"unknown step record kind {kind!r}")


class StepRecorder:
    """Runs a step's transaction at most once per (turn, key)."""

    def __init__(
        self,
        db: Database,
        signals: Signals,
        on_error: Callable[[AsyncConnection, str, str, str], Awaitable[StepResult]],
        history: Callable[[TurnContext, str | None], Awaitable[tuple[Message, ...]]],
    ) -> None:
        self._db = db
        self._signals = signals
        self._on_error = on_error
        self._history = history

    async def run(
        self,
        context: TurnContext,
        key: str,
        write: Callable[[AsyncConnection], Awaitable[StepResult]],
    ) -> tuple[StepResult, bool]:
        """``once`` for a step of the turn ``context`` (see there)."""
        return await self.once(
            context.session_id,
            context.turn_id,
            key,
            lambda basis: self._history(context, basis),
            write,
            fresh=context.fresh,
        )

    async def replay(self, context: TurnContext, key: str) -> StepResult | None:
        """The recorded result of the turn's step ``key``, if a run recorded one."""
        value = await self.recorded(context.turn_id, key)
        if value is None:
            return None
        return decode(value, await self._history(context, basis_of(value)))

    async def recorded(self, turn_id: str, key: str) -> JsonValue | None:
        async with self._db.read() as conn:
            done, value = await turn_store.recorded_effect(conn, turn_id, key)
        return value if done else None

    async def once(
        self,
        session_id: str,
        turn_id: str,
        key: str,
        history: Callable[[str | None], Awaitable[tuple[Message, ...]]],
        write: Callable[[AsyncConnection], Awaitable[StepResult]],
        *,
        fresh: bool = False,
    ) -> tuple[StepResult, bool]:
        """Run ``write`` and record its result under ``key`` in one transaction, unless a run
        of this step recorded it before: then that result. Returns (result, replayed).

        ``fresh``: this process started the turn's first step itself (no record existed), so no
        later step can have a record yet and the look-up is skipped; the record's primary key
        still refuses a second one (a concurrent run), and that run's result is returned.

        ``TurnHalted`` raised by ``write`` rolls the transaction back and propagates; an
        ``EverloopError`` (a broken configuration) fails the turn with a readable message.
        """
        try:
            async with self._db.write() as conn:
                done, value = (
                    (False, None) if fresh else await turn_store.recorded_effect(conn, turn_id, key)
                )
                if not done:
                    try:
                        result = await write(conn)
                    except EverloopError as exc:
                        result = await self._on_error(conn, session_id, turn_id, exc.message)
                    await turn_store.record_effect(conn, turn_id, key, encode(result))
        except IntegrityError:
            # Another execution of this step committed first: its result is the result.
            value = await self.recorded(turn_id, key)
            if value is None:
                raise
            done = True
        if done:
            return decode(value, await history(basis_of(value))), True
        self._signals.events_appended(session_id)
        return result, False


def running(turn_id: str) -> TurnGuard:
    """A guard for a step's write that must happen only while the turn runs (see
    ``store.event_log.TurnGuard``): the check rides on the write's first statement."""
    return TurnGuard(turn_id)


async def require_running(conn: AsyncConnection, turn_id: str) -> None:
    status = await turn_store.turn_status(conn, turn_id)
    if status != "running":
        raise TurnHalted(status or "missing")


def event_context(turn_id: str, input_message_id: str) -> EventContext:
    return EventContext(
        turn_id=turn_id, input_message_id=input_message_id, exec_id=None, trace_id=turn_id
    )


def call_from_json(value: dict[str, Any]) -> ToolCallPart:
    part = part_from_json(value)
    assert isinstance(part, ToolCallPart)
    return part


def result_from_json(value: JsonValue) -> ToolResultPart:
    assert isinstance(value, dict)
    part = part_from_json(value)
    assert isinstance(part, ToolResultPart)
    return part


def _opt_str(value: JsonValue) -> str | None:
    return value if isinstance(value, str) else None
