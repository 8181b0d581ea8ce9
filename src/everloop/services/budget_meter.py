"""Budgets in the turn loop: charging a model call's generation to every budget that applies,
in the transaction that records the generation, and deciding before each model call whether a
budget stops the turn. Also the credits (a top-up, a raised limit, a new period) and the
resume, which change what the next call may do.

A session's spending counts against the budgets of: the session, its delegation tree's root
(a subagent's), its agent, its owner user, and its organization (``store.budgets``). Charges
lock those budgets in id order. ``balance`` stays ``limit`` minus the ledger's sum.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.budgets import (
    Budget,
    BudgetBlock,
    BudgetEvent,
    after_charge,
    charge_amount,
    current_period,
    status_after_credit,
)
from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.schedules import parse_instant
from everloop.domain.timestamps import format_ts
from everloop.domain.usage import TokenUsage
from everloop.store import budgets as store
from everloop.store.db import Database


def event_data(budget: Budget, message: str) -> dict[str, Any]:
    return {
        "budget_id": budget.id,
        "balance": budget.balance,
        "limit": budget.limit,
        "currency": budget.currency,
        "soft_limit": budget.soft_limit,
        "message": message,
    }


_MESSAGES: dict[BudgetEvent, str] = {
    "budget.warning": "20% or less of the budget is left",
    "budget.paused": "the budget's soft limit is reached: the session pauses until resumed",
    "budget.exhausted": "the budget is spent: top it up or raise its limit, then resume",
    "budget.resumed": "the budget is active again",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def rolled(budget: Budget, now: datetime) -> tuple[Budget, float]:
    """The budget in the period holding ``now`` (balance back to its limit, warning and resume
    marks cleared, paused or exhausted lifted) and the credit that reset took (0: none)."""
    if budget.period is None or budget.period_started_at is None:
        return budget, 0.0
    started = parse_instant(budget.period_started_at, field="period_started_at")
    current = current_period(budget.period, started, now)
    if current == started:
        return budget, 0.0
    credit = budget.limit - budget.balance
    return (
        replace(
            budget,
            period_started_at=format_ts(current),
            balance=budget.limit,
            status="active" if budget.status != "disabled" else "disabled",
            warned_period=None,
            resumed_soft_limit=None,
        ),
        credit,
    )


async def roll_period(conn: AsyncConnection, budget: Budget, now: datetime) -> Budget:
    """Turn the budget over to the period holding ``now`` (a ``period_reset`` credit in the
    ledger) and save it; unchanged when its period still runs."""
    new, credit = rolled(budget, now)
    if new is budget:
        return budget
    stamp = format_ts(now)
    await store.add_entry(
        conn,
        budget,
        amount=-credit,
        meter_source="period_reset",
        created_at=stamp,
        ref_type="period",
        ref_id=new.period_started_at,
        description="a new period: the balance is back to the limit",
    )
    new = replace(new, updated_at=stamp)
    await store.save_budget(conn, new)
    return new


def block_of(budget: Budget) -> BudgetBlock | None:
    if budget.status == "exhausted" or (budget.status != "disabled" and budget.balance <= 0):
        return BudgetBlock(budget.id, "exhausted", _MESSAGES["budget.exhausted"])
    if budget.status == "paused":
        return BudgetBlock(budget.id, "paused", _MESSAGES["budget.paused"])
    return None


class BudgetMeter:
    """The budget port of the turn engine (``engine.ports.BudgetGate``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def blocked(
        self, session_id: str, conn: AsyncConnection | None = None
    ) -> BudgetBlock | None:
        """The first budget that stops the session's next model call, if any. Read-only: a
        budget whose period has turned over counts as fresh (the next charge writes it)."""
        if conn is None:
            async with self._db.read() as reading:
                found = await store.applicable_to_session(reading, session_id)
        else:
            found = await store.applicable_to_session(conn, session_id)
        now = utc_now()
        for budget in found:
            block = block_of(rolled(budget, now)[0])
            if block is not None:
                return block
        return None

    async def charge(
        self,
        conn: AsyncConnection,
        session_id: str,
        *,
        ref_id: str,
        usage: TokenUsage,
        cost_usd: float | None,
        context: EventContext,
    ) -> list[NewEvent]:
        """Charge one generation to every budget that applies, inside the step transaction
        that records it (so once: the step's record, and the ledger's unique ref), and
        return the events the budgets' rules write into the session's log."""
        found = await store.applicable_to_session(conn, session_id, lock=True)
        if not found:
            return []
        now = utc_now()
        stamp = format_ts(now)
        tokens = (
            usage.input_tokens
            + usage.output_tokens
            + usage.cache_read_tokens
            + usage.cache_creation_tokens
        )
        events: list[NewEvent] = []
        charged: list[tuple[Budget, float]] = []
        for budget in found:
            budget = await roll_period(conn, budget, now)
            amount = charge_amount(budget.currency, tokens, cost_usd)
            after, written = after_charge(budget, amount)
            charged.append((after, amount))
            events.extend(
                NewEvent(kind, event_data(after, _MESSAGES[kind]), context) for kind in written
            )
        await store.charge_entries(
            conn, charged, ref_id=ref_id, session_id=session_id, created_at=stamp
        )
        return events


async def credit(
    conn: AsyncConnection,
    budget: Budget,
    amount: float,
    *,
    description: str | None = None,
    now: datetime | None = None,
) -> Budget:
    """A top-up of ``amount`` (a ``top_up`` credit in the ledger); an exhausted budget with a
    balance above zero again is active."""
    moment = now or utc_now()
    budget = await roll_period(conn, budget, moment)
    stamp = format_ts(moment)
    await store.add_entry(
        conn,
        budget,
        amount=-amount,
        meter_source="top_up",
        created_at=stamp,
        ref_type="manual",
        description=description,
    )
    topped = replace(budget, balance=budget.balance + amount, updated_at=stamp)
    topped = replace(topped, status=status_after_credit(topped))
    await store.save_budget(conn, topped)
    return topped


def resumed(budget: Budget) -> Budget | None:
    """The budget after a resume, or None when a resume does not lift it: a paused budget
    with a balance above zero is active again (and does not pause again this period below a
    higher soft limit); an exhausted one needs a top-up or a raised limit first."""
    if budget.status != "paused" or budget.balance <= 0:
        return None
    return replace(budget, status="active", resumed_soft_limit=budget.soft_limit)


def resume_event(budget: Budget, context: EventContext) -> NewEvent:
    return NewEvent("budget.resumed", event_data(budget, _MESSAGES["budget.resumed"]), context)
