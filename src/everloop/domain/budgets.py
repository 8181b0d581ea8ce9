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
import re
from collections.abc import Sequence
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
_USER_ID = re.compile(r"^[0-9a-f]{8}(-?)[0-9a-f]{4}\1[0-9a-f]{4}\1[0-9a-f]{4}\1[0-9a-f]{12}$")


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


def check_subject_type(value: str, *, field: str = "subject_type") -> SubjectType:
    """A subject type; Everruns' ``organization`` is ``org``."""
    found = "org" if value == "organization" else value
    if found not in SUBJECT_TYPES:
        raise InvalidInput(
            f"unknown subject type {value!r}: use session, agent, user or org", field=field
        )
    return found  # type: ignore[return-value]


def user_subject_id(value: str) -> str | None:
    """A user id as sessions record their owner user (``resolved_owner_user_id``: a UUID
    with dashes), from that form or 32 hex characters; None when ``value`` is neither."""
    text = value.strip().lower()
    if not _USER_ID.match(text):
        return None
    hex32 = text.replace("-", "")
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def check_limits(limit: float, soft_limit: float | None) -> None:
    """``limit`` finite and above 0; ``soft_limit`` (when set) finite, from 0 to ``limit``."""
    check_amount(limit, field="limit", allow_zero=False)
    if soft_limit is None:
        return
    check_amount(soft_limit, field="soft_limit")
    if soft_limit > limit:
        raise InvalidInput(
            f"soft_limit ({soft_limit:g}) is above the limit ({limit:g})", field="soft_limit"
        )


def check_currency(value: str) -> Currency:
    if value not in CURRENCIES:
        raise InvalidInput(
            f"unknown currency {value!r}: use usd, tokens or credits (1 credit = 1,000 tokens)",
            field="currency",
        )
    return value  # type: ignore[return-value]


CalendarUnit = Literal["hour", "day", "week", "month", "year"]
CALENDAR_UNITS: Final = ("hour", "day", "week", "month", "year")
MIN_PERIOD_SECONDS: Final = 60
MAX_PERIOD_SECONDS: Final = 10 * 366 * 24 * 3600
_WINDOW = re.compile(r"^(?:[0-9]{1,9}[smhdw])+$")
_WINDOW_PART = re.compile(r"([0-9]+)([smhdw])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def check_period(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A period as stored (Everruns' ``BudgetPeriod`` shapes, normalized), or a 422 naming
    the field:

    - ``{"type": "duration", "seconds": N}``: a window of N seconds from
      ``period_started_at``, restarted when it elapses;
    - ``{"type": "rolling", "window": "24h"}`` (``s m h d w``, combinable: ``1d12h``): the
      same, with ``seconds`` added and ``window`` kept (``seconds`` alone is accepted too);
    - ``{"type": "calendar", "unit": "month"}``: aligned to UTC ``hour``, ``day``, ``week``
      (from Monday), ``month`` or ``year`` boundaries.

    Windows are at least a minute and at most ten years."""
    if value is None:
        return None
    kind = value.get("type")
    if kind == "calendar":
        unit = value.get("unit") or "month"
        if unit not in CALENDAR_UNITS:
            raise InvalidInput(
                f"unknown calendar unit {unit!r}: use hour, day, week, month or year",
                field="period.unit",
            )
        return {"type": "calendar", "unit": unit}
    if kind == "rolling" and value.get("window") is not None:
        window = value["window"]
        return {"type": "rolling", "window": window.strip(), "seconds": _window_seconds(window)}
    if kind in ("rolling", "duration"):
        seconds = value.get("seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            need = "seconds (a whole number) or window" if kind == "rolling" else "seconds"
            raise InvalidInput(f"a {kind} period needs {need}", field="period.seconds")
        return {"type": kind, "seconds": _check_seconds(seconds, field="period.seconds")}
    raise InvalidInput(
        "period.type is duration (with seconds), rolling (with window, such as '24h') or "
        "calendar (with unit hour, day, week, month or year)",
        field="period.type",
    )


def _window_seconds(window: Any) -> int:
    text = window.strip().lower() if isinstance(window, str) else ""
    if not _WINDOW.match(text):
        raise InvalidInput(
            f"{window!r} is not a window: a number and a unit (s, m, h, d, w), such as '24h', "
            "'7d' or '1d12h'",
            field="period.window",
        )
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _WINDOW_PART.findall(text))
    return _check_seconds(seconds, field="period.window")


def _check_seconds(seconds: int, *, field: str) -> int:
    if not MIN_PERIOD_SECONDS <= seconds <= MAX_PERIOD_SECONDS:
        raise InvalidInput(
            f"a period lasts from {MIN_PERIOD_SECONDS} seconds to ten years "
            f"({MAX_PERIOD_SECONDS} seconds)",
            field=field,
        )
    return seconds


def period_start(period: dict[str, Any] | None, now: datetime) -> datetime | None:
    """Where the period holding ``now`` starts, for a new budget: ``now`` for a window, the
    last boundary of its unit (UTC) for a calendar period."""
    if period is None:
        return None
    if period["type"] != "calendar":
        return now
    moment = now.astimezone(UTC)
    hour = moment.replace(minute=0, second=0, microsecond=0)
    match period["unit"]:
        case "hour":
            return hour
        case "day":
            return hour.replace(hour=0)
        case "week":
            return hour.replace(hour=0) - timedelta(days=moment.weekday())
        case "year":
            return hour.replace(month=1, day=1, hour=0)
        case _:
            return hour.replace(day=1, hour=0)


def period_end(period: dict[str, Any], started: datetime) -> datetime:
    """Where the period that started at ``started`` ends (the next one starts)."""
    if period["type"] != "calendar":
        return started + timedelta(seconds=int(period["seconds"]))
    match period["unit"]:
        case "hour":
            return started + timedelta(hours=1)
        case "day":
            return started + timedelta(days=1)
        case "week":
            return started + timedelta(days=7)
        case "year":
            return started.replace(year=started.year + 1)
        case _:
            if started.month == 12:
                return started.replace(year=started.year + 1, month=1)
            return started.replace(month=started.month + 1)


def current_period(period: dict[str, Any], started: datetime, now: datetime) -> datetime:
    """The start of the period holding ``now``, from a period that started at ``started``
    (``started`` itself while that period runs)."""
    if now < period_end(period, started):
        return started
    if period["type"] == "calendar":
        found = period_start(period, now)
        assert found is not None
        return found
    length = timedelta(seconds=int(period["seconds"]))
    return started + length * ((now - started) // length)


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


BudgetAction = Literal["continue", "warn", "pause", "stop"]
_SEVERITY: Final[dict[BudgetAction, int]] = {"continue": 0, "warn": 1, "pause": 2, "stop": 3}


def action_of(budget: Budget) -> BudgetAction:
    """What a budget lets a session do next: ``stop`` (exhausted, or nothing left), ``pause``
    (paused until resumed), ``warn`` (20 % or less left) or ``continue``."""
    if budget.status == "disabled":
        return "continue"
    if budget.status == "exhausted" or budget.balance <= 0:
        return "stop"
    if budget.status == "paused":
        return "pause"
    if budget.balance <= WARNING_FRACTION * budget.limit:
        return "warn"
    return "continue"


def most_restrictive(budgets: Sequence[Budget]) -> tuple[BudgetAction, Budget | None]:
    """The action of the most restrictive of ``budgets`` and that budget (of two alike, the
    one with the least of its limit left); ``continue`` and None when there are none."""
    if not budgets:
        return "continue", None
    chosen = max(
        budgets,
        key=lambda b: (_SEVERITY[action_of(b)], -b.balance / b.limit if b.limit else 0.0),
    )
    return action_of(chosen), chosen


def status_after_credit(budget: Budget) -> BudgetStatus:
    """An exhausted budget whose balance is above zero again (a top-up, a raised limit, a new
    period) is active; a paused one stays paused until a resume."""
    if budget.status == "exhausted" and budget.balance > 0:
        return "active"
    return budget.status
