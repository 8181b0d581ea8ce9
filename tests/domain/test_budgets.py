"""Budgets as pure rules: periods (their shapes, boundaries and turnover) and what a charge
does to a budget (warning once a period, pause above the soft limit, exhausted at zero)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from everloop.domain.budgets import (
    Budget,
    action_of,
    after_charge,
    check_limits,
    check_period,
    check_subject_type,
    current_period,
    most_restrictive,
    period_end,
    period_start,
    user_subject_id,
)
from everloop.errors import InvalidInput


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def budget(**fields: Any) -> Budget:
    values: dict[str, Any] = {
        "id": "budget_1",
        "organization_id": "org_1",
        "subject_type": "session",
        "subject_id": "session_1",
        "currency": "tokens",
        "limit": 100.0,
        "soft_limit": None,
        "period": None,
        "period_started_at": None,
        "balance": 100.0,
        "status": "active",
        "metadata": None,
        "warned_period": None,
        "resumed_soft_limit": None,
        "created_at": "2026-01-01T00:00:00.000Z",
        "updated_at": "2026-01-01T00:00:00.000Z",
    }
    return Budget(**(values | fields))


def refused(call: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()
    assert caught.value.field == field, caught.value.message


# -- periods -----------------------------------------------------------------------------------


def test_period_shapes_are_normalized() -> None:
    assert check_period(None) is None
    assert check_period({"type": "duration", "seconds": 3600}) == {
        "type": "duration",
        "seconds": 3600,
    }
    assert check_period({"type": "rolling", "window": "24h"}) == {
        "type": "rolling",
        "window": "24h",
        "seconds": 86400,
    }
    assert check_period({"type": "rolling", "window": " 7d "})["seconds"] == 7 * 86400
    assert check_period({"type": "rolling", "window": "30m"})["seconds"] == 1800
    assert check_period({"type": "rolling", "window": "1d12h"})["seconds"] == 36 * 3600
    assert check_period({"type": "rolling", "window": "2w"})["seconds"] == 14 * 86400
    assert check_period({"type": "rolling", "seconds": 120}) == {"type": "rolling", "seconds": 120}
    for unit in ("hour", "day", "week", "month", "year"):
        assert check_period({"type": "calendar", "unit": unit}) == {
            "type": "calendar",
            "unit": unit,
        }


def test_bad_periods_name_their_field() -> None:
    refused(lambda: check_period({"type": "weekly"}), "period.type")
    refused(lambda: check_period({}), "period.type")
    refused(lambda: check_period({"type": "calendar", "unit": "fortnight"}), "period.unit")
    refused(lambda: check_period({"type": "rolling", "window": "24"}), "period.window")
    refused(lambda: check_period({"type": "rolling", "window": "h"}), "period.window")
    refused(lambda: check_period({"type": "rolling", "window": "-1h"}), "period.window")
    refused(lambda: check_period({"type": "rolling", "window": "59s"}), "period.window")
    refused(lambda: check_period({"type": "rolling", "window": "5000w"}), "period.window")
    refused(lambda: check_period({"type": "rolling"}), "period.seconds")
    refused(lambda: check_period({"type": "duration", "seconds": 59}), "period.seconds")
    refused(lambda: check_period({"type": "duration", "seconds": 0}), "period.seconds")
    refused(lambda: check_period({"type": "duration", "seconds": True}), "period.seconds")
    refused(lambda: check_period({"type": "duration", "seconds": 1.5}), "period.seconds")
    refused(lambda: check_period({"type": "duration", "window": "24h"}), "period.seconds")


def test_calendar_periods_start_on_utc_boundaries() -> None:
    now = datetime(2026, 3, 18, 15, 42, 7, 123000, tzinfo=UTC)  # a Wednesday

    def start(unit: str) -> datetime | None:
        return period_start({"type": "calendar", "unit": unit}, now)

    assert start("hour") == at("2026-03-18T15:00:00")
    assert start("day") == at("2026-03-18T00:00:00")
    assert start("week") == at("2026-03-16T00:00:00")  # Monday
    assert start("month") == at("2026-03-01T00:00:00")
    assert start("year") == at("2026-01-01T00:00:00")
    # Another offset is the same instant: boundaries are UTC's.
    from zoneinfo import ZoneInfo

    late = datetime(2026, 4, 1, 1, 30, tzinfo=ZoneInfo("Europe/Vilnius"))  # 22:30Z, March 31
    assert period_start({"type": "calendar", "unit": "month"}, late) == at("2026-03-01T00:00:00")
    window = {"type": "duration", "seconds": 3600}
    assert period_start(window, now) == now
    assert period_start(None, now) is None


def test_calendar_periods_end_at_the_next_boundary() -> None:
    month = {"type": "calendar", "unit": "month"}
    assert period_end(month, at("2026-01-01T00:00:00")) == at("2026-02-01T00:00:00")
    assert period_end(month, at("2026-02-01T00:00:00")) == at("2026-03-01T00:00:00")
    assert period_end(month, at("2026-12-01T00:00:00")) == at("2027-01-01T00:00:00")
    year = {"type": "calendar", "unit": "year"}
    assert period_end(year, at("2028-01-01T00:00:00")) == at("2029-01-01T00:00:00")
    week = {"type": "calendar", "unit": "week"}
    assert period_end(week, at("2026-12-28T00:00:00")) == at("2027-01-04T00:00:00")
    day = {"type": "calendar", "unit": "day"}
    assert period_end(day, at("2028-02-28T00:00:00")) == at("2028-02-29T00:00:00")
    hour = {"type": "calendar", "unit": "hour"}
    assert period_end(hour, at("2026-12-31T23:00:00")) == at("2027-01-01T00:00:00")


def test_a_month_rolls_over_including_december() -> None:
    month = {"type": "calendar", "unit": "month"}
    started = at("2026-11-01T00:00:00")
    assert current_period(month, started, at("2026-11-30T23:59:59")) == started
    assert current_period(month, started, at("2026-12-01T00:00:00")) == at("2026-12-01T00:00:00")
    assert current_period(month, started, at("2026-12-31T23:59:59")) == at("2026-12-01T00:00:00")
    assert current_period(month, started, at("2027-01-01T00:00:00")) == at("2027-01-01T00:00:00")
    # Months with nobody spending are skipped over at once.
    assert current_period(month, started, at("2028-05-17T08:00:00")) == at("2028-05-01T00:00:00")


def test_rolling_windows_restart_from_their_start() -> None:
    day = check_period({"type": "rolling", "window": "24h"})
    assert day is not None
    started = at("2026-03-01T10:30:00")
    assert current_period(day, started, at("2026-03-02T10:29:59")) == started
    assert current_period(day, started, at("2026-03-02T10:30:00")) == at("2026-03-02T10:30:00")
    # Three windows and a bit later: the fourth window's start, not now.
    assert current_period(day, started, at("2026-03-04T11:00:00")) == at("2026-03-04T10:30:00")
    five_minutes = {"type": "duration", "seconds": 300}
    late = started + timedelta(days=400, seconds=299)
    assert current_period(five_minutes, started, late) == started + timedelta(days=400)
    # A clock behind the start keeps the period.
    assert current_period(day, started, started - timedelta(hours=1)) == started


# -- the other checks --------------------------------------------------------------------------


def test_subjects_limits_and_user_ids() -> None:
    assert check_subject_type("organization") == "org"
    for kind in ("session", "agent", "user", "org"):
        assert check_subject_type(kind) == kind
    refused(lambda: check_subject_type("team"), "subject_type")
    check_limits(100, None)
    check_limits(100, 0)
    check_limits(100, 100)
    refused(lambda: check_limits(0, None), "limit")
    refused(lambda: check_limits(-1, None), "limit")
    refused(lambda: check_limits(float("nan"), None), "limit")
    refused(lambda: check_limits(float("inf"), None), "limit")
    refused(lambda: check_limits(100, 100.5), "soft_limit")
    refused(lambda: check_limits(100, -1), "soft_limit")
    refused(lambda: check_limits(100, float("nan")), "soft_limit")
    dashed = "01234567-89ab-cdef-0123-456789abcdef"
    assert user_subject_id("0123456789ABCDEF0123456789abcdef") == dashed
    assert user_subject_id(dashed) == dashed
    assert user_subject_id("0123456789ab-cdef-0123-456789abcdef") is None
    assert user_subject_id("session_0123456789abcdef0123456789abcdef") is None


# -- after a charge ----------------------------------------------------------------------------


def test_warning_once_per_period() -> None:
    fresh = budget(period_started_at="2026-03-01T00:00:00.000Z", period={"type": "calendar"})
    charged, events = after_charge(fresh, 79)
    assert events == [] and charged.balance == 21
    charged, events = after_charge(charged, 1)  # 20 % left
    assert events == ["budget.warning"] and charged.status == "active"
    charged, events = after_charge(charged, 5)
    assert events == []
    # The next period warns again.
    next_period = replace(
        charged, balance=100.0, period_started_at="2026-04-01T00:00:00.000Z", warned_period=None
    )
    _, events = after_charge(next_period, 85)
    assert events == ["budget.warning"]


def test_pause_above_the_soft_limit() -> None:
    capped = budget(soft_limit=50.0)
    charged, events = after_charge(capped, 50)
    assert events == [] and charged.status == "active"  # at the soft limit: not above it
    charged, events = after_charge(charged, 1)
    assert events == ["budget.paused"] and charged.status == "paused"
    # Charges that were in flight go on being recorded; it stays paused, no second event.
    charged, events = after_charge(charged, 1)
    assert events == [] and charged.status == "paused" and charged.balance == 48


def test_no_pause_again_after_a_resume_unless_the_soft_limit_is_raised_and_crossed() -> None:
    # A resume clears the soft limit it paused at (services.budget_meter.resumed).
    resumed = budget(soft_limit=50.0, balance=40.0, resumed_soft_limit=50.0)
    charged, events = after_charge(resumed, 10)
    assert "budget.paused" not in events and charged.status == "active"
    # A lower soft limit than the cleared one does not pause either.
    lowered = replace(charged, soft_limit=40.0)
    charged, events = after_charge(lowered, 1)
    assert "budget.paused" not in events and charged.status == "active"
    # Raised, and not yet crossed: active; crossed: paused again.
    raised = replace(charged, soft_limit=75.0)
    charged, events = after_charge(raised, 5)  # spent 76, above 75
    assert charged.spent == 76 and events == ["budget.paused"] and charged.status == "paused"
    raised_higher = replace(resumed, soft_limit=90.0)
    charged, events = after_charge(raised_higher, 5)  # spent 65 of a soft limit of 90
    assert events == [] and charged.status == "active"


def test_exhausted_at_zero_or_below() -> None:
    charged, events = after_charge(budget(balance=10.0), 10)
    assert events == ["budget.exhausted"] and charged.status == "exhausted"
    assert charged.balance == 0
    # An overshoot is recorded; a further charge writes no second event.
    charged, events = after_charge(charged, 3)
    assert events == [] and charged.balance == -3 and charged.status == "exhausted"
    # Exhausted wins over pause and warning.
    _, events = after_charge(budget(soft_limit=10.0, balance=5.0), 7)
    assert events == ["budget.exhausted"]
    # A disabled budget is charged but nothing happens to it.
    charged, events = after_charge(budget(status="disabled", balance=1.0), 5)
    assert events == [] and charged.status == "disabled"


def test_actions_and_the_most_restrictive() -> None:
    assert action_of(budget()) == "continue"
    assert action_of(budget(balance=20.0)) == "warn"
    assert action_of(budget(status="paused", balance=90.0)) == "pause"
    assert action_of(budget(status="exhausted", balance=5.0)) == "stop"
    assert action_of(budget(balance=0.0)) == "stop"
    assert most_restrictive([]) == ("continue", None)
    calm = budget(id="budget_a", balance=90.0)
    low = budget(id="budget_b", balance=30.0)
    warned = budget(id="budget_c", balance=10.0)
    paused = budget(id="budget_d", status="paused", balance=80.0)
    assert most_restrictive([calm, low]) == ("continue", low)
    assert most_restrictive([calm, warned, low]) == ("warn", warned)
    assert most_restrictive([warned, paused, calm]) == ("pause", paused)
    spent = budget(id="budget_e", status="exhausted", balance=-1.0)
    assert most_restrictive([paused, spent, warned]) == ("stop", spent)
