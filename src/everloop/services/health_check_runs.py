"""Driving a health-check run: each case a real session of the agent, scored, then a summary.

**Durable, each case once.** A run's state is its rows: the run (``pending`` -> ``running`` ->
``completed``/``failed``) and one row per case (``pending`` -> ``running`` -> ``done``). A case
starts in one transaction that claims its row (a guarded update from ``pending``), creates the
session (``SessionService.create_in``, tagged ``health_check:<run id>``) and queues its turn: a
crash before the commit leaves the case pending and nothing else; after it, the case names its
session and turn, and the turn is a recorded turn the engine's start-up sweep starts again. So
a case's session is created exactly once, whatever is killed when.

**Progress after a restart.** As the schedule timer does for due schedules, every process that
runs turns resumes the unfinished runs when it starts (``resume``); a run's driver is an
in-process task that skips done cases, waits for the turns of running ones and starts pending
ones, at most ``max_parallel`` cases at a time. Two processes driving one run (several workers
starting together) cannot start a case twice (the claim) nor record it twice (``done`` is a
guarded update too); at worst both ask the judge.

**Waiting** for a turn is a wait on the session's "events appended" signal, re-checked in the
database at least every ``poll_seconds`` (another process may be running the turn). The judge's
model call runs outside any transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.health_checks import (
    JUDGE_SYSTEM_PROMPT,
    TAG_PREFIX,
    CaseResult,
    HealthCheckCase,
    JudgeUnparseable,
    JudgeVerdict,
    TurnEnd,
    TurnOutcome,
    check_deterministically,
    judge_prompt,
    parse_judge_reply,
    score_case,
    summarize,
)
from everloop.domain.messages import Message, TextPart
from everloop.domain.resources import PrincipalKind
from everloop.domain.timestamps import now
from everloop.engine import events as ev
from everloop.engine.signals import Signals
from everloop.errors import EverloopError
from everloop.llm.base import ModelCallError, ModelRequest, complete
from everloop.services.auth import Caller
from everloop.services.models import ModelService
from everloop.services.sessions import SessionService
from everloop.store import health_checks as store
from everloop.store import turns as turn_store
from everloop.store.db import Database
from everloop.store.event_log import append_events

log = logging.getLogger(__name__)

_JUDGE_ATTEMPTS = 3


class TurnStarter(Protocol):
    async def enqueue_turn(self, session_id: str, turn_id: str) -> None: ...


class TurnCanceller(Protocol):
    async def cancel(self, caller: Caller, session_id: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class RunLimits:
    max_parallel: int
    case_timeout_seconds: float
    poll_seconds: float


def run_caller(run: store.RunRow) -> Caller:
    """The caller that triggered the run: its sessions are created as that caller's."""
    return Caller(
        run.organization_id,
        run.principal_id,
        run.user_id,
        run.principal_role,
        PrincipalKind(run.principal_kind),
    )


class _Claimed(Exception):
    """The case was claimed by another writer: roll back what this one began."""


class HealthCheckRunner:
    """Drives runs to their end: one task per run in this process."""

    def __init__(
        self,
        db: Database,
        sessions: SessionService,
        models: ModelService,
        signals: Signals,
        limits: RunLimits,
    ) -> None:
        self._db = db
        self._sessions = sessions
        self._models = models
        self._signals = signals
        self._limits = limits
        self._starter: TurnStarter | None = None
        self._canceller: TurnCanceller | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def connect(self, starter: TurnStarter, canceller: TurnCanceller) -> None:
        """Where case turns start and are cancelled (built after the services that use this)."""
        self._starter = starter
        self._canceller = canceller

    def start(self, run_id: str) -> None:
        """Drive ``run_id`` here unless this process already does."""
        task = self._tasks.get(run_id)
        if task is not None and not task.done():
            return
        self._tasks[run_id] = asyncio.create_task(self._drive(run_id), name=f"health-{run_id}")

    async def resume(self) -> int:
        """Start-up: drive every unfinished run. Returns how many."""
        async with self._db.read() as conn:
            unfinished = await store.unfinished_run_ids(conn)
        for run_id in unfinished:
            self.start(run_id)
        return len(unfinished)

    async def settled(self, run_id: str) -> None:
        """Return once this process's driver of ``run_id`` (if any) has ended."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.shield(task)

    async def stop(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drive(self, run_id: str) -> None:
        try:
            async with self._db.write() as conn:
                run = await store.get_run(conn, run_id)
                if run is None or run.status not in ("pending", "running"):
                    return
                await store.move_run(conn, run_id, ("pending",), {"status": "running"})
            cases = [HealthCheckCase.from_json(c, 0.0) for c in run.cases]
            slots = asyncio.Semaphore(self._limits.max_parallel)
            await asyncio.gather(
                *(self._case(run, index, case, slots) for index, case in enumerate(cases))
            )
            await self._finish(run_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a run whose driver broke is failed, not left running
            log.exception("health-check run %s failed", run_id)
            async with self._db.write() as conn:
                await store.move_run(
                    conn,
                    run_id,
                    ("pending", "running"),
                    {
                        "status": "failed",
                        "error_message": f"the run failed: {type(exc).__name__}",
                        "completed_at": now(),
                    },
                )

    async def _finish(self, run_id: str) -> None:
        async with self._db.write() as conn:
            rows = await store.cases_of(conn, [run_id])
            if any(row.status != "done" or row.result is None for row in rows):
                return  # another driver is still at it: it finishes the run
            results = [CaseResult.from_json(row.result) for row in rows if row.result]
            await store.move_run(
                conn,
                run_id,
                ("running",),
                {
                    "status": "completed",
                    "summary": summarize(results).to_json(),
                    "completed_at": now(),
                },
            )

    async def _case(
        self, run: store.RunRow, index: int, case: HealthCheckCase, slots: asyncio.Semaphore
    ) -> None:
        async with slots:
            async with self._db.read() as conn:
                row = await store.get_case(conn, run.id, index)
            assert row is not None, "a run's cases are inserted with it"
            if row.status == "done":
                return
            if row.status == "pending":
                try:
                    row = await self._start(run, index, case)
                except EverloopError as exc:  # the agent was archived, its model removed...
                    await self._record(
                        run, index, _not_started(case, f"could not start: {exc.message}")
                    )
                    return
            assert row.session_id is not None and row.turn_id is not None
            assert row.started_at is not None
            outcome = await self._await_turn(run, row.session_id, row.turn_id, row.started_at)
            await self._record(run, index, await self._score(run, case, row.session_id, outcome))

    async def _start(self, run: store.RunRow, index: int, case: HealthCheckCase) -> store.CaseRow:
        """Claim the case and create its session and turn in one transaction; the case row as
        it is now (running: with this writer's session, or with the one that won)."""
        session_id, turn_id, ts = ids.new_id("session"), ids.new_id("turn"), now()
        try:
            async with self._db.write() as conn:
                if not await store.claim_case(
                    conn, run.id, index, session_id=session_id, turn_id=turn_id, ts=ts
                ):
                    raise _Claimed
                await self._sessions.create_in(
                    conn,
                    run_caller(run),
                    {
                        "id": session_id,
                        "agent_id": run.agent_id,
                        "title": f"Health check: {case.name}"[:200],
                        "tags": [f"{TAG_PREFIX}{run.id}"],
                        "max_iterations": case.max_turns,
                    },
                )
                await _queue_message(conn, run.id, index, session_id, turn_id, case, ts)
        except _Claimed:
            pass
        else:
            self._signals.events_appended(session_id)
            assert self._starter is not None, "connect() the runner first"
            try:
                await self._starter.enqueue_turn(session_id, turn_id)
            except Exception:  # recorded, not lost: the start-up sweep enqueues it again
                log.exception("could not enqueue the turn %s of a health check", turn_id)
        async with self._db.read() as conn:
            row = await store.get_case(conn, run.id, index)
        assert row is not None and row.status != "pending"
        return row

    async def _await_turn(
        self, run: store.RunRow, session_id: str, turn_id: str, started_at: str
    ) -> TurnOutcome:
        """The turn's outcome once it ended, or ``timed_out`` (the turn is cancelled) past the
        case timeout counted from when the case started (so a restart does not reset it)."""
        started = datetime.fromisoformat(started_at)
        deadline = started.timestamp() + self._limits.case_timeout_seconds
        while True:
            async with self._db.read() as conn:
                record = await store.turn_record(conn, session_id, turn_id)
            if record.terminal_type is not None:
                return _outcome(record, started)
            remaining = deadline - datetime.now(UTC).timestamp()
            if remaining <= 0:
                assert self._canceller is not None, "connect() the runner first"
                with contextlib.suppress(EverloopError):
                    await self._canceller.cancel(run_caller(run), session_id)
                async with self._db.read() as conn:
                    record = await store.turn_record(conn, session_id, turn_id)
                limit = self._limits.case_timeout_seconds
                return TurnOutcome(
                    "timed_out",
                    record.answer,
                    record.generations,
                    record.input_tokens,
                    record.output_tokens,
                    _elapsed_ms(started),
                    error=f"the turn did not end within {limit:g} s",
                )
            await self._signals.wait_for_events(
                session_id, min(self._limits.poll_seconds, remaining)
            )

    async def _score(
        self, run: store.RunRow, case: HealthCheckCase, session_id: str, outcome: TurnOutcome
    ) -> CaseResult:
        deterministic = check_deterministically(case, outcome)
        if deterministic.error is not None:
            return score_case(case, outcome, session_id, deterministic, None)
        try:
            verdict, tokens = await self._judge(run, case, outcome.answer)
        except (EverloopError, ModelCallError) as exc:
            failed = f"the judge call failed: {exc}"
            result = score_case(case, outcome, session_id, deterministic, JudgeUnparseable(failed))
            return replace(result, passed=False, error=failed)
        return score_case(case, outcome, session_id, deterministic, verdict, tokens)

    async def _judge(
        self, run: store.RunRow, case: HealthCheckCase, answer: str
    ) -> tuple[JudgeVerdict | JudgeUnparseable, tuple[int, int]]:
        """One model call to the run's judge (the org default model when it names none)."""
        model = await self._models.resolve(run.organization_id, [run.judge_model_id])
        message = Message(ids.new_id("message"), "user", (TextPart(judge_prompt(case, answer)),))
        for attempt in range(1, _JUDGE_ATTEMPTS + 1):
            request = ModelRequest(
                model=model.model_name,
                system_prompt=JUDGE_SYSTEM_PROMPT,
                messages=(message,),
                settings={"attempt": attempt},
            )
            try:
                completed = await complete(model.driver, request)
            except ModelCallError as exc:
                if not exc.retryable or attempt == _JUDGE_ATTEMPTS:
                    raise
                await asyncio.sleep(exc.retry_after or 0.5 * attempt)
                continue
            usage = completed.usage
            return parse_judge_reply(completed.text), (usage.input_tokens, usage.output_tokens)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _record(self, run: store.RunRow, index: int, result: CaseResult) -> None:
        async with self._db.write() as conn:
            await store.finish_case(conn, run.id, index, result.to_json())


async def _queue_message(
    conn: AsyncConnection,
    run_id: str,
    index: int,
    session_id: str,
    turn_id: str,
    case: HealthCheckCase,
    ts: str,
) -> None:
    """The case's user message as the session's first turn, queued (as a schedule's fire
    queues one: ``services.schedule_firing.record_fire``)."""
    message = Message(ids.new_id("message"), "user", (TextPart(case.user_message),), ts)
    data = ev.input_message(message=message)
    wire = data["message"]
    assert isinstance(wire, dict)
    wire["metadata"] = {"source": "health_check", "health_check_id": run_id, "case_index": index}
    context = EventContext(turn_id=turn_id, input_message_id=message.id, trace_id=turn_id)
    provenance = {"initiator": "health_check", "health_check_id": run_id, "case_index": index}
    stored = await append_events(
        conn,
        session_id,
        [NewEvent("input.message", data, context, metadata=provenance)],
        session_values={"updated_at": ts, "preview": ev.preview(case.user_message)},
    )
    await turn_store.insert_turn(
        conn,
        turn_id=turn_id,
        session_id=session_id,
        input_message_id=message.id,
        input_sequence=stored[0].sequence,
    )


def _outcome(record: store.TurnRecord, started: datetime) -> TurnOutcome:
    data = record.terminal_data
    end: TurnEnd = "completed"
    error = None
    match record.terminal_type:
        case "turn.completed":
            duration = data.get("duration_ms")
            latency = duration if isinstance(duration, int) else _elapsed_ms(started)
        case "turn.failed":
            end, error, latency = "failed", str(data.get("error") or ""), _elapsed_ms(started)
        case "turn.sealed":
            end, error, latency = "sealed", str(data.get("detail") or ""), _elapsed_ms(started)
        case _:
            end, error, latency = "cancelled", str(data.get("reason") or ""), _elapsed_ms(started)
    return TurnOutcome(
        end,
        record.answer,
        record.generations,
        record.input_tokens,
        record.output_tokens,
        latency,
        error=error or None,
    )


def _elapsed_ms(started: datetime) -> int:
    return max(0, int((datetime.now(UTC) - started).total_seconds() * 1000))


def _not_started(case: HealthCheckCase, reason: str) -> CaseResult:
    outcome = TurnOutcome("failed", "", 0, 0, 0, 0, error=reason)
    return score_case(case, outcome, None, check_deterministically(case, outcome), None)
