"""Schedules with a clock of the test's own: on-time, late, missed (caught up once or skipped),
one-shot, pause and resume, limits, and the tools through a turn. The timer is driven by
``tick(now)`` with a chosen ``now``; the turns a fire queues run on the real engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from everloop.domain.schedules import parse_instant
from everloop.errors import InvalidInput
from everloop.services.schedule_firing import ScheduleTimer
from everloop.services.schedules import NewSchedule, ScheduleLimits, ScheduleService
from everloop.store import schedules as schedule_store
from tests.conftest import Api
from tests.engine.conftest import events, new_session, wait_turns_ended

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


DAILY = "0 9 * * *"
NEW_YORK = ZoneInfo("America/New_York")


async def caller(api: Api) -> Any:
    return await api.services.auth.authenticate(f"Bearer {api.token}", None)


def at(text: str | None) -> datetime:
    assert text is not None
    return parse_instant(text, field="at")


async def daily(api: Api, session_id: str, **fields: Any) -> Any:
    spec = NewSchedule(
        session_id=session_id,
        name=fields.pop("name", "daily"),
        message=fields.pop("message", "good morning"),
        cron_expression=fields.pop("cron_expression", DAILY),
        timezone=fields.pop("timezone", "Europe/Vilnius"),
        **fields,
    )
    return await api.services.schedules.create(await caller(api), spec)


def timer(api: Api, *, missed_after: float = 60.0) -> ScheduleTimer:
    found = ScheduleTimer(
        api.services.db,
        api.services.signals,
        executor="test",
        poll_seconds=1.0,
        missed_after=missed_after,
    )
    found.connect(api.services.engine)
    return found


async def executions(api: Api, schedule_id: str) -> list[Any]:
    found, _ = await api.services.schedules.executions(await caller(api), schedule_id, limit=100)
    return sorted(found, key=lambda e: e.scheduled_at)


async def inputs(api: Api, session_id: str) -> list[dict[str, Any]]:
    return [e for e in await events(api, session_id) if e["type"] == "input.message"]


async def test_a_due_fire_runs_once_as_a_turn_with_its_provenance(engine: Api) -> None:
    session_id = await new_session(engine)
    schedule = await daily(engine, session_id)
    due = at(schedule.next_trigger_at)
    clock = timer(engine)
    await clock.tick(due + timedelta(seconds=0.5))
    await clock.tick(due + timedelta(seconds=0.9))  # nothing is due twice
    [execution] = await executions(engine, schedule.id)
    assert (execution.trigger, at(execution.scheduled_at)) == ("schedule", due)
    [message] = await inputs(engine, session_id)
    metadata = message["metadata"]
    assert metadata["schedule_id"] == schedule.id
    assert metadata["schedule_execution_id"] == execution.id
    assert metadata["initiator"] == "schedule" and at(metadata["scheduled_at"]) == due
    assert message["context"]["turn_id"] == execution.turn_id
    assert message["data"]["message"]["content"][0]["text"] == "good morning"
    await wait_turns_ended(engine, session_id)
    [execution] = await executions(engine, schedule.id)
    assert execution.status == "completed" and execution.duration_ms is not None
    after = await engine.services.schedules.get(await caller(engine), schedule.id)
    assert at(after.next_trigger_at) == due + timedelta(days=1)
    assert after.last_triggered_at is not None and after.enabled
    stats = await engine.services.schedules.stats(await caller(engine), schedule.id)
    assert (stats.total_executions, stats.successful_executions) == (1, 1)
    assert stats.last_execution_status == "completed"


async def test_a_short_stall_fires_each_due_time(engine: Api) -> None:
    session_id = await new_session(engine)
    schedule = await daily(engine, session_id, cron_expression="*/5 * * * *", timezone="UTC")
    due = at(schedule.next_trigger_at)
    await timer(engine, missed_after=3600).tick(due + timedelta(minutes=11))
    found = await executions(engine, schedule.id)
    assert [at(e.scheduled_at) - due for e in found] == [
        timedelta(0),
        timedelta(minutes=5),
        timedelta(minutes=10),
    ]
    assert {e.trigger for e in found} == {"schedule"}
    await wait_turns_ended(engine, session_id, count=3)
    assert len(await inputs(engine, session_id)) == 3


async def test_missed_fires_are_caught_up_once(engine: Api) -> None:
    session_id = await new_session(engine)
    schedule = await daily(engine, session_id)
    due = at(schedule.next_trigger_at)
    now = due + timedelta(days=3, hours=1)
    await timer(engine).tick(now)
    [execution] = await executions(engine, schedule.id)
    assert execution.trigger == "catch_up"
    assert at(execution.scheduled_at) == due + timedelta(days=3)  # the latest one missed
    assert execution.turn_id is not None
    after = await engine.services.schedules.get(await caller(engine), schedule.id)
    assert at(after.next_trigger_at) == due + timedelta(days=4)
    await wait_turns_ended(engine, session_id)
    assert len(await inputs(engine, session_id)) == 1


async def test_missed_fires_are_skipped_without_catch_up(engine: Api) -> None:
    session_id = await new_session(engine)
    schedule = await daily(engine, session_id, catch_up_missed=False)
    due = at(schedule.next_trigger_at)
    await timer(engine).tick(due + timedelta(days=2, minutes=5))
    [execution] = await executions(engine, schedule.id)
    assert (execution.status, execution.turn_id) == ("skipped", None)
    assert "catch_up_missed" in (execution.error or "")
    assert await inputs(engine, session_id) == []
    stats = await engine.services.schedules.stats(await caller(engine), schedule.id)
    assert (stats.total_executions, stats.skipped_executions) == (1, 1)
    after = await engine.services.schedules.get(await caller(engine), schedule.id)
    assert at(after.next_trigger_at) == due + timedelta(days=3)


async def test_a_one_shot_fires_once_and_is_done(engine: Api) -> None:
    session_id = await new_session(engine)
    when = datetime.now().astimezone() + timedelta(hours=2)
    spec = NewSchedule(
        session_id=session_id, name="once", message="remind me", scheduled_at=when.isoformat()
    )
    schedule = await engine.services.schedules.create(await caller(engine), spec)
    assert schedule.kind == "once" and at(schedule.next_trigger_at) == at(schedule.scheduled_at)
    assert (await engine.client.get(f"/v1/sessions/{session_id}")).json()[
        "active_schedule_count"
    ] == 1
    clock = timer(engine)
    await clock.tick(when + timedelta(seconds=1))
    await clock.tick(when + timedelta(days=1))
    assert len(await executions(engine, schedule.id)) == 1
    done = await engine.services.schedules.get(await caller(engine), schedule.id)
    assert (done.enabled, done.next_trigger_at) == (False, None)
    assert (await engine.client.get(f"/v1/sessions/{session_id}")).json()[
        "active_schedule_count"
    ] == 0
    with pytest.raises(InvalidInput) as refused:
        await engine.services.schedules.resume(await caller(engine), schedule.id)
    assert refused.value.field == "scheduled_at"


async def test_a_paused_schedule_does_not_fire_and_resumes_from_now(engine: Api) -> None:
    session_id = await new_session(engine)
    schedule = await daily(engine, session_id)
    due = at(schedule.next_trigger_at)
    who = await caller(engine)
    paused = await engine.services.schedules.pause(who, schedule.id)
    assert (paused.enabled, paused.next_trigger_at) == (False, None)
    await timer(engine).tick(due + timedelta(days=5))
    assert await executions(engine, schedule.id) == []
    resumed = await engine.services.schedules.resume(who, schedule.id)
    assert resumed.enabled and at(resumed.next_trigger_at) == due


async def test_a_busy_schedule_skips_past_max_concurrent(api: Api) -> None:
    # The engine is not running here: the first fire's turn stays queued.
    session_id = await new_session(api)
    schedule = await daily(
        api, session_id, cron_expression="*/5 * * * *", timezone="UTC", max_concurrent=1
    )
    due = at(schedule.next_trigger_at)
    clock = timer(api)
    await clock.tick(due)
    await clock.tick(due + timedelta(minutes=5))
    first, second = await executions(api, schedule.id)
    assert (first.status, second.status) == ("pending", "skipped")
    assert "max_concurrent" in (second.error or "")


async def test_limits_and_bad_input(api: Api) -> None:
    session_id = await new_session(api)
    other = await new_session(api)
    who = await caller(api)
    tight = ScheduleService(
        api.services.db,
        api.services.schedule_timer,
        ScheduleLimits(min_interval_seconds=300, max_per_session=2, max_per_org=3),
    )

    async def create(session: str, name: str, **fields: Any) -> Any:
        fields.setdefault("cron_expression", DAILY)
        return await tight.create(
            who, NewSchedule(session_id=session, name=name, message="m", **fields)
        )

    await create(session_id, "a")
    await create(session_id, "b")
    with pytest.raises(InvalidInput) as refused:
        await create(session_id, "c")
    assert refused.value.field == "enabled" and "2 active schedules" in str(refused.value)
    paused = await create(session_id, "c", enabled=False)  # paused ones do not count
    await create(other, "d")
    with pytest.raises(InvalidInput) as refused:
        await create(other, "e")
    assert "organization" in str(refused.value)
    with pytest.raises(InvalidInput):
        await tight.resume(who, paused.id)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cron_expression": "*/1 * * * *"}, "cron_expression"),  # every 60 s < 300 s
        ({"cron_expression": "0 9 * *"}, "cron_expression"),
        ({"cron_expression": DAILY, "timezone": "Mars/Base"}, "timezone"),
        ({"cron_expression": None, "scheduled_at": "2020-01-01T00:00:00Z"}, "scheduled_at"),
        ({"cron_expression": None, "scheduled_at": "soon"}, "scheduled_at"),
        ({"cron_expression": None}, "cron_expression"),  # neither
        ({"scheduled_at": "2099-01-01T00:00:00Z"}, "cron_expression"),  # both
        ({"max_concurrent": 0}, "max_concurrent"),
    ]
    roomy = api.services.schedules
    for fields, field in cases:
        fields.setdefault("cron_expression", DAILY)
        with pytest.raises(InvalidInput) as refused:
            await roomy.create(
                who, NewSchedule(session_id=session_id, name="bad", message="m", **fields)
            )
        assert refused.value.field == field, (fields, refused.value)
    listed, total = await roomy.list_schedules(who, session_id=session_id)
    assert total == 3 and {s.name for s in listed} == {"a", "b", "c"}


async def test_a_schedule_runs_as_the_sessions_identity_with_its_defaults(engine: Api) -> None:
    made = await engine.client.post(
        "/v1/agent-identities",
        json={"name": "night-shift", "timezone": "America/New_York", "locale": "lt-LT"},
    )
    assert made.status_code == 201, made.text
    identity = made.json()
    session_id = await new_session(engine, agent_identity_id=identity["id"])
    schedule = await daily(engine, session_id, timezone=None)
    assert schedule.timezone == "America/New_York"  # the identity's, as none was given
    due = at(schedule.next_trigger_at)
    assert due.astimezone(NEW_YORK).hour == 9
    await timer(engine).tick(due)
    [message] = await inputs(engine, session_id)
    assert message["metadata"]["acting_principal_id"] == identity["principal_id"]
    assert message["metadata"]["agent_identity_id"] == identity["id"]
    assert message["data"]["message"]["metadata"]["locale"] == "lt-LT"
    await wait_turns_ended(engine, session_id)
    # Without an identity, a fire runs as the schedule's owner: the principal that made it.
    plain = await new_session(engine)
    owned = await daily(engine, plain)
    await timer(engine).tick(at(owned.next_trigger_at))
    [message] = await inputs(engine, plain)
    assert message["metadata"]["acting_principal_id"] == (await caller(engine)).principal_id
    assert message["metadata"]["agent_identity_id"] is None


async def test_a_fire_that_fails_backs_off_and_holds_back_no_other(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = await new_session(api)
    broken = await daily(api, session_id, name="broken")
    fine = await daily(api, session_id, name="fine")
    # A schedule the timer cannot fire (its stored expression no longer parses).
    async with api.services.db.write() as conn:
        await schedule_store.update_schedule(conn, broken.id, {"cron_expression": "not cron"})
    clock = timer(api)
    due = at(broken.next_trigger_at)
    wait = await clock.tick(due)
    assert [e.trigger for e in await executions(api, fine.id)] == ["schedule"]
    assert await executions(api, broken.id) == []
    assert wait == 1.0  # what is still due waits out its back-off: no spinning
    failures = [r for r in caplog.records if "could not fire schedule" in r.getMessage()]
    assert len(failures) == 1
    await clock.tick(due + timedelta(seconds=5))  # within the back-off: not tried again
    assert len([r for r in caplog.records if "could not fire" in r.getMessage()]) == 1
    await clock.tick(due + timedelta(seconds=31))  # after it: tried again
    assert len([r for r in caplog.records if "could not fire" in r.getMessage()]) == 2
