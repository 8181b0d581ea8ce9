"""Budgets through the API: create, read, update and delete the caller's organization's
budgets, top them up, read their ledgers, check them, and resume a session they paused.

A budget caps what a subject spends (a session, an agent, a member user, the organization),
in ``usd``, ``tokens`` or ``credits``. The turn loop charges it (``services.budget_meter``);
here an operator shapes it. ``balance`` stays ``limit`` minus the ledger's sum: a top-up is a
credit in the ledger, and a new ``limit`` moves the balance by the difference (no entry).

A period turns over lazily: reads show the budget in the period holding now (the balance back
at its limit), and the next write to it (a charge, a top-up, an update, a resume) records the
``period_reset`` credit. Another organization's budget, or one deleted (status ``disabled``),
is a 404.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.budgets import (
    Budget,
    BudgetAction,
    SubjectType,
    check_amount,
    check_currency,
    check_limits,
    check_period,
    check_subject_type,
    most_restrictive,
    period_start,
    status_after_credit,
    user_subject_id,
)
from everloop.domain.event_log import EventContext
from everloop.domain.timestamps import format_ts
from everloop.engine.signals import Signals
from everloop.errors import InvalidInput, NotFound
from everloop.services import budget_meter as meter
from everloop.services.auth import Caller
from everloop.services.turns import TurnQueue
from everloop.store import budget_subjects as subjects_store
from everloop.store import budgets as store
from everloop.store import turns as turn_store
from everloop.store.db import Database
from everloop.store.event_log import append_events

log = logging.getLogger("everloop.budgets")

_SUBJECT_HINTS: dict[SubjectType, str] = {
    "session": "a live session of this organization (GET /v1/sessions)",
    "agent": "an agent of this organization (GET /v1/agents)",
    "user": "the user id of a member of this organization (a UUID, with or without dashes)",
    "org": "this organization's id",
}
_ERROR_CODES: dict[BudgetAction, str | None] = {
    "continue": None,
    "warn": None,
    "pause": "budget_paused",
    "stop": "budget_exhausted",
}
_ACTION_MESSAGES: dict[BudgetAction, str | None] = {
    "continue": None,
    "warn": "20% or less of the budget is left",
    "pause": "the budget's soft limit is reached: the session is paused until resumed "
    "(POST /v1/sessions/{id}/resume)",
    "stop": "the budget is spent: top it up or raise its limit, then resume the session",
}


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """What the most restrictive of some budgets lets a session do next (Everruns'
    ``BudgetCheckResult``): the action, the budget behind it, why, and a stable code when the
    action stops or pauses the session."""

    action: BudgetAction
    budget: Budget | None
    message: str | None
    error_code: str | None


def check_of(budgets: list[Budget]) -> BudgetCheck:
    action, budget = most_restrictive(budgets)
    return BudgetCheck(action, budget, _ACTION_MESSAGES[action], _ERROR_CODES[action])


class BudgetService:
    """The budgets of the caller's organization. ``queue`` starts a resumed session's next
    queued turn (the turn engine, as for ``TurnService``)."""

    def __init__(self, db: Database, queue: TurnQueue, signals: Signals) -> None:
        self._db = db
        self._queue = queue
        self._signals = signals

    async def create(self, caller: Caller, fields: dict[str, Any]) -> Budget:
        org = caller.organization_id
        subject_type = check_subject_type(fields["subject_type"])
        subject_id = _subject_id(subject_type, fields["subject_id"])
        currency = check_currency(fields["currency"])
        limit, soft_limit = fields["limit"], fields.get("soft_limit")
        check_limits(limit, soft_limit)
        period = check_period(fields.get("period"))
        moment = meter.utc_now()
        started = period_start(period, moment)
        stamp = format_ts(moment)
        budget = Budget(
            id=ids.new_id("budget"),
            organization_id=org,
            subject_type=subject_type,
            subject_id=subject_id,
            currency=currency,
            limit=float(limit),
            soft_limit=float(soft_limit) if soft_limit is not None else None,
            period=period,
            period_started_at=format_ts(started) if started is not None else None,
            balance=float(limit),
            status="active",
            metadata=fields.get("metadata"),
            warned_period=None,
            resumed_soft_limit=None,
            created_at=stamp,
            updated_at=stamp,
        )
        async with self._db.write() as conn:
            if not await subjects_store.subject_exists(conn, org, subject_type, subject_id):
                raise InvalidInput(
                    f"no {subject_type} '{subject_id}' in this organization: subject_id names "
                    f"{_SUBJECT_HINTS[subject_type]}",
                    code="unknown_subject",
                    field="subject_id",
                )
            await store.insert_budget(conn, budget)
        return budget

    async def get(self, caller: Caller, budget_id: str) -> Budget:
        async with self._db.read() as conn:
            return _as_of_now([await _get(conn, caller.organization_id, budget_id)])[0]

    async def update(self, caller: Caller, budget_id: str, fields: dict[str, Any]) -> Budget:
        """A PATCH: ``limit`` moves the balance by the difference; ``soft_limit`` null
        removes it; ``status`` may be ``active`` or ``paused`` (while some balance is left),
        or ``disabled`` (as a delete: the answer shows it, later reads are 404);
        ``metadata`` null clears it. All or nothing."""
        moment = meter.utc_now()
        async with self._db.write() as conn:
            current = await _get(conn, caller.organization_id, budget_id, lock=True)
            current = await meter.roll_period(conn, current, moment)
            updated = _updated(current, fields)
            updated = replace(updated, updated_at=format_ts(moment))
            await store.save_budget(conn, updated)
        return updated

    async def delete(self, caller: Caller, budget_id: str) -> None:
        """Disable the budget: it no longer applies, and reads of it are 404."""
        async with self._db.write() as conn:
            current = await _get(conn, caller.organization_id, budget_id, lock=True)
            stamp = format_ts(meter.utc_now())
            await store.save_budget(conn, replace(current, status="disabled", updated_at=stamp))

    async def top_up(
        self, caller: Caller, budget_id: str, amount: float, *, description: str | None = None
    ) -> Budget:
        """Credit ``amount`` (a ``top_up`` entry in the ledger); an exhausted budget with a
        balance above zero again is active (a paused one waits for a resume)."""
        check_amount(amount, field="amount", allow_zero=False)
        async with self._db.write() as conn:
            current = await _get(conn, caller.organization_id, budget_id, lock=True)
            return await meter.credit(conn, current, amount, description=description)

    async def ledger(
        self, caller: Caller, budget_id: str, *, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        """The budget's ledger entries, newest first."""
        async with self._db.read() as conn:
            await _get(conn, caller.organization_id, budget_id)
            entries, _total = await store.ledger(conn, budget_id, offset=offset, limit=limit)
        return entries

    async def check(self, caller: Caller, budget_id: str) -> BudgetCheck:
        return check_of([await self.get(caller, budget_id)])

    async def for_session(self, caller: Caller, session_id: str) -> list[Budget]:
        """The budgets a session's spending counts against: its own, its delegation tree
        root's, its agent's, its owner user's and its organization's."""
        async with self._db.read() as conn:
            found = await _applicable(conn, caller.organization_id, session_id)
        return _as_of_now(found)

    async def check_session(self, caller: Caller, session_id: str) -> BudgetCheck:
        return check_of(await self.for_session(caller, session_id))

    async def resume(self, caller: Caller, session_id: str) -> int:
        """Set the session's paused budgets active again (each with a ``budget.resumed``
        event), and how many. When then no budget that applies blocks it, a ``paused``
        session is ``idle`` again and its earliest queued turn starts. An exhausted budget
        is not resumed: a top-up or a higher limit lifts it first."""
        moment = meter.utc_now()
        stamp = format_ts(moment)
        next_turn: str | None = None
        async with self._db.write() as conn:
            # The session's row before its budgets: the order of a charge (its step updates
            # the session's usage first), so a resume and a charge cannot deadlock.
            await turn_store.lock_session(conn, session_id)
            found = await _applicable(conn, caller.organization_id, session_id, lock=True)
            lifted: list[Budget] = []
            now_budgets: list[Budget] = []
            for budget in found:
                budget = await meter.roll_period(conn, budget, moment)
                resumed = meter.resumed(budget)
                if resumed is not None:
                    budget = replace(resumed, updated_at=stamp)
                    await store.save_budget(conn, budget)
                    lifted.append(budget)
                now_budgets.append(budget)
            context = EventContext()
            await append_events(
                conn,
                session_id,
                [meter.resume_event(budget, context) for budget in lifted],
                session_values={"updated_at": stamp},
            )
            unblocked = all(meter.block_of(budget) is None for budget in now_budgets)
            if unblocked and await subjects_store.unpause_session(conn, session_id, stamp):
                next_turn = await turn_store.next_open_turn(conn, session_id)
        # A turn already waiting in this process wakes now (a resume that only unpauses
        # writes no event to wake it; in other processes it sees the change at its recheck).
        self._signals.events_appended(session_id)
        if next_turn is not None:
            try:
                await self._queue.enqueue_turn(session_id, next_turn)
            except Exception:
                # Recorded, not lost: the start-up sweep enqueues open turns again.
                log.exception("could not enqueue turn %s after a resume", next_turn)
        return len(lifted)

    async def list(
        self, caller: Caller, *, subject_type: str | None = None, subject_id: str | None = None
    ) -> list[Budget]:
        kind = check_subject_type(subject_type) if subject_type is not None else None
        if subject_id is not None and kind in (None, "user"):
            subject_id = user_subject_id(subject_id) or subject_id
        async with self._db.read() as conn:
            found = await store.list_budgets(
                conn, caller.organization_id, subject_type=kind, subject_id=subject_id
            )
        return _as_of_now(found)


async def _get(conn: AsyncConnection, org_id: str, budget_id: str, *, lock: bool = False) -> Budget:
    ids.parse("budget", budget_id, field="budget_id")
    found = await store.get_budget(conn, org_id, budget_id, lock=lock)
    if found is None:
        raise NotFound.of("budget", budget_id)
    return found


async def _applicable(
    conn: AsyncConnection, org_id: str, session_id: str, *, lock: bool = False
) -> list[Budget]:
    ids.parse("session", session_id, field="session_id")
    if await subjects_store.session_status(conn, org_id, session_id) is None:
        raise NotFound.of("session", session_id)
    return await store.applicable_to_session(conn, session_id, lock=lock)


def _subject_id(subject_type: SubjectType, subject_id: str) -> str:
    """A user as sessions record their owner (a UUID with dashes), so that its budget applies
    to them; other subjects as given."""
    if subject_type != "user":
        return subject_id
    found = user_subject_id(subject_id)
    if found is None:
        raise InvalidInput(
            f"'{subject_id}' is not a user id: subject_id names {_SUBJECT_HINTS['user']}",
            code="unknown_subject",
            field="subject_id",
        )
    return found


def _as_of_now(budgets: list[Budget], moment: datetime | None = None) -> list[Budget]:
    """The budgets as they stand now: one whose period has turned over is shown fresh."""
    at = moment or meter.utc_now()
    return [meter.rolled(budget, at)[0] for budget in budgets]


def _updated(budget: Budget, fields: dict[str, Any]) -> Budget:
    limit = fields.get("limit")
    limit = budget.limit if limit is None else float(limit)
    soft_limit = fields.get("soft_limit", budget.soft_limit)
    check_limits(limit, soft_limit)
    changed = replace(
        budget,
        limit=limit,
        soft_limit=float(soft_limit) if soft_limit is not None else None,
        balance=budget.balance + (limit - budget.limit),
        metadata=fields.get("metadata", budget.metadata),
    )
    changed = replace(changed, status=status_after_credit(changed))
    if changed.balance <= 0 and changed.status in ("active", "paused"):
        changed = replace(changed, status="exhausted")
    status = fields.get("status")
    if status is not None and status not in ("active", "paused", "disabled"):
        raise InvalidInput(
            f"status may be set to active, paused or disabled, not {status!r} (a budget is "
            "exhausted when its balance runs out)",
            field="status",
        )
    if status is None or status == changed.status:
        return changed
    if status == "disabled":
        return replace(changed, status="disabled")
    if changed.balance <= 0:
        raise InvalidInput(
            f"the budget has no balance left ({changed.balance:g}): top it up or raise its "
            "limit before setting its status",
            field="status",
        )
    if status == "active":
        # As a resume: it does not pause again this period below a higher soft limit.
        return replace(changed, status="active", resumed_soft_limit=changed.soft_limit)
    return replace(changed, status="paused")
