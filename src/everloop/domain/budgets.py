"""Budgets: what a charge costs in a budget's currency, when its period turns over, and what a
charge does to it (Everruns' rules), as pure functions.

Rules, evaluated after each charge (``after_charge``):

- balance at or below zero: ``exhausted`` (``budget.exhausted``); the next model call of a
  session it applies to is refused and the turn sealed;
- spent above ``soft_limit``: ``paused`` (``budget.paused``), unless a resume in this period
  cleared a soft limit at least as high;
- balance at or below 20 % of the limit: one ``budget.warning`` per period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from everloop.errors import InvalidInput

SubjectType = Literal["session", "agent", "user", "org"]
BudgetStatus = Literal["active", "paused", "exhausted", "disabled"]
Currency = Literal["usd", "tokens", "credits"]
SUBJECT_TYPES: Final = ("session", "agent", "user", "org")
CURRENCIES: Final = ("usd", "tokens", "credits")
WARNING_FRACTION: Final = 0.2
MAX_AMOUNT: Final = 1e15


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    organization_id: str
    subject_type: SubjectType
    subject_id: str
    currency: Currency
    limit: float
    soft_limit: float | None
    period: dict[str, Any] | None
    period_started_at: str | None
    balance: float
    status: BudgetStatus
    metadata: Any
    warned_period: str | None
    resumed_soft_limit: float | None
    created_at: str
    updated_at: str

    @property
    def spent(self) -> float:
        return self.limit - self.balance


@dataclass(frozen=True, slots=True)
class BudgetBlock:
    """A budget that stops a session's next model call."""

    budget_id: str
    status: Literal["paused", "exhausted"]
    message: str


BudgetEvent = Literal["budget.warning", "budget.paused", "budget.exhausted", "budget.resumed"]


def check_amount(value: float, *, field: str, allow_zero: bool = True) -> float:
    """A finite, non-negative amount (positive unless ``allow_zero``); 422 naming ``field``."""
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        need = "a finite number at least 0" if allow_zero else "a finite number above 0"
        raise InvalidInput(f"{field} must be {need}", field=field)
    if value > MAX_AMOUNT:
        raise InvalidInput(f"{field} is at most {MAX_AMOUNT:g}", field=field)
    return float(value)


def check_currency(value: str) -> Currency:
    if value not in CURRENCIES:
        raise InvalidInput(
            f"unknown currency {value!r}: use usd, tokens or credits (1 credit = 1,000 tokens)",
            field="currency",
        )
    return value  # type: ignore[return-value]


def check_period(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A period: ``{"type": "calendar", "unit": "month"}`` (a calendar month, UTC) or
    ``{"type": "rolling" | "duration", "seconds": N}`` (N ≥ 60)."""
    if value is None:
        return None
    kind = value.get("type")
    if kind == "calendar":
        unit = value.get("unit") or value.get("window") or "month"
        if unit != "month":
            raise InvalidInput("a calendar period is a month: unit 'month'", field="period.unit")
        return {"type": "calendar", "unit": "month"}
    if kind in ("rolling", "duration"):
        seconds = value.get("seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 60:
            raise InvalidInput(
                "a rolling period needs seconds, a whole number at least 60",
                field="period.seconds",
            )
        return {"type": kind, "seconds": seconds}
    raise InvalidInput(
        "period.type is calendar (with unit month) or rolling/duration (with seconds)",
        field="period.type",
    )


def period_start(period: dict[str, Any] | None, now: datetime) -> datetime | None:
    """Where the period holding ``now`` starts (for a new budget)."""
    if period is None:
        return None
    if period["type"] == "calendar":
        return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return now


def period_end(period: dict[str, Any], started: datetime) -> datetime:
    if period["type"] == "calendar":
        if started.month == 12:
            return started.replace(year=started.year + 1, month=1)
        return started.replace(month=started.month + 1)
    return started + timedelta(seconds=int(period["seconds"]))


def current_period(period: dict[str, Any], started: datetime, now: datetime) -> datetime:
    """The start of the period holding ``now``, from a period that started at ``started``."""
    while True:
        following = period_end(period, started)
        if following > now:
            return started
        started = following


def charge_amount(currency: Currency, tokens: int, cost_usd: float | None) -> float:
    """What a generation of ``tokens`` (prompt and output) costing ``cost_usd`` takes from a
    budget in ``currency``."""
    match currency:
        case "tokens":
            return float(tokens)
        case "credits":
            return tokens / 1000
        case "usd":
            return float(cost_usd or 0.0)


def after_charge(budget: Budget, amount: float) -> tuple[Budget, list[BudgetEvent]]:
    """The budget after a debit of ``amount`` (already recorded in the ledger), and the events
    the rules write."""
    charged = replace(budget, balance=budget.balance - amount)
    events: list[BudgetEvent] = []
    if budget.status == "disabled":
        return charged, events
    if charged.balance <= 0:
        if charged.status != "exhausted":
            charged = replace(charged, status="exhausted")
            events.append("budget.exhausted")
        return charged, events
    soft = charged.soft_limit
    cleared = charged.resumed_soft_limit
    if (
        charged.status == "active"
        and soft is not None
        and charged.spent > soft
        and (cleared is None or soft > cleared)
    ):
        charged = replace(charged, status="paused")
        events.append("budget.paused")
    if charged.balance <= WARNING_FRACTION * charged.limit and charged.warned_period != (
        charged.period_started_at or ""
    ):
        charged = replace(charged, warned_period=charged.period_started_at or "")
        events.append("budget.warning")
    return charged, events


def status_after_credit(budget: Budget) -> BudgetStatus:
    """An exhausted budget whose balance is above zero again (a top-up, a raised limit, a new
    period) is active; a paused one stays paused until a resume."""
    if budget.status == "exhausted" and budget.balance > 0:
        return "active"
    return budget.status
