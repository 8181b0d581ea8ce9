"""Schedules against a real ``everloop serve`` (issue 15): fires into idle and busy sessions, a
manual trigger, ``active_schedule_count`` through ``everruns-sdk`` and the session list, and a
``kill -9`` across a one-shot's due time. Exactly once across processes (an API process and two
workers on one PostgreSQL database) is ``test_schedules_scale_out.py``.

The checks are on executions, event logs and their order, never on timings: a test waits only
for a condition, or for the wall clock to pass a due time the scenario is about.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from everruns_sdk import Everruns

from everloop.domain.timestamps import format_ts
from tests.e2e.conftest import Api, Server, wait_for

pytestmark = pytest.mark.slow

DEADLINE = 30.0
# Per-second cron is allowed only below the default five-minute floor.
SCHEDULE_ENV = {"EVERLOOP_SCHEDULE_MIN_INTERVAL_SECONDS": "1"}
EVERY_SECOND = "* * * * * *"
YEARLY = "0 0 1 1 *"  # never due while a test runs
QUICK = {"response": {"type": "fixed", "text": "ok"}}


# -- helpers (shared with test_schedules_scale_out) ---------------------------------------------


def create_schedule(
    http: httpx.Client,
    session_id: str,
    name: str,
    *,
    cron: str | None = None,
    at: datetime | None = None,
    message: str = "tick",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "timezone": "UTC",
        "target": {
            "type": "workflow",
            "name": "session.run",
            "input": {"session_id": session_id, "message": message},
        },
        **extra,
    }
    if cron is not None:
        body["cron_expression"] = cron
    if at is not None:
        body["scheduled_at"] = format_ts(at)
    created = http.post("durable/schedules", json=body)
    assert created.status_code == 201, created.text
    schedule: dict[str, Any] = created.json()
    return schedule


def executions(http: httpx.Client, schedule_id: str) -> list[dict[str, Any]]:
    """Every execution of the schedule, oldest first."""
    found: list[dict[str, Any]] = []
    while True:
        page = http.get(
            f"durable/schedules/{schedule_id}/executions",
            params={"offset": len(found), "limit": 100},
        )
        assert page.status_code == 200, page.text
        body = page.json()
        found.extend(body["data"])
        if len(found) >= body["total"] or not body["data"]:
            return sorted(found, key=lambda e: (e["scheduled_at"], e["started_at"]))


def settled_executions(
    http: httpx.Client, schedule_id: str, *, at_least: int = 1, timeout: float = DEADLINE
) -> list[dict[str, Any]]:
    """Wait until the schedule has ``at_least`` executions and none is pending or running."""

    def settled() -> list[dict[str, Any]] | None:
        found = executions(http, schedule_id)
        if len(found) < at_least:
            return None
        if any(e["status"] in ("pending", "running") for e in found):
            return None
        return found

    result: list[dict[str, Any]] = wait_for(
        settled, timeout=timeout, what=f"{at_least} settled executions", interval=0.2
    )
    return result


def session_events(http: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = http.get(
            f"sessions/{session_id}/events",
            params={"after_sequence": found[-1]["sequence"] if found else 0, "limit": 1000},
        )
        assert page.status_code == 200, page.text
        data = page.json()["data"]
        found.extend(data)
        if len(data) < 1000:
            return found


def fired_inputs(log: list[dict[str, Any]], schedule_id: str) -> list[dict[str, Any]]:
    """The ``input.message`` events a schedule posted."""
    return [
        e
        for e in log
        if e["type"] == "input.message" and (e["metadata"] or {}).get("schedule_id") == schedule_id
    ]


def assert_fires_sound(
    log: list[dict[str, Any]], schedule_id: str, found: list[dict[str, Any]]
) -> None:
    """Each execution made exactly one ``input.message`` (with its provenance) and one turn,
    which started and completed once; and the schedule posted nothing else."""
    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1)), "gaps or duplicates"
    inputs = fired_inputs(log, schedule_id)
    by_execution = Counter(e["metadata"]["schedule_execution_id"] for e in inputs)
    assert by_execution == Counter(e["id"] for e in found), "not one input.message per execution"
    started = Counter(e["data"]["turn_id"] for e in log if e["type"] == "turn.started")
    completed = Counter(e["data"]["turn_id"] for e in log if e["type"] == "turn.completed")
    for execution in found:
        [posted] = [e for e in inputs if e["metadata"]["schedule_execution_id"] == execution["id"]]
        assert execution["turn_id"] is not None and execution["status"] == "completed", execution
        assert posted["context"]["turn_id"] == execution["turn_id"]
        assert posted["metadata"]["trigger"] == execution["trigger"]
        assert posted["metadata"]["scheduled_at"] == execution["scheduled_at"]
        assert posted["data"]["message"]["metadata"]["source"] == "schedule"
        assert posted["data"]["message"]["metadata"]["schedule_id"] == schedule_id
        assert started[execution["turn_id"]] == 1, execution
        assert completed[execution["turn_id"]] == 1, execution
    assert len({e["turn_id"] for e in found}) == len(found), "two executions share a turn"


def wait_until(moment: datetime, what: str) -> None:
    """Let the wall clock pass ``moment`` (a due time the scenario is about)."""
    seconds = (moment - datetime.now(UTC)).total_seconds()
    wait_for(
        lambda: datetime.now(UTC) > moment,
        timeout=max(seconds, 0) + 5,
        what=what,
        interval=0.1,
    )


def by_sequence(log: list[dict[str, Any]], kind: str, turn_id: str) -> int:
    [sequence] = [
        e["sequence"] for e in log if e["type"] == kind and e["data"]["turn_id"] == turn_id
    ]
    return int(sequence)


@pytest.fixture
def scheduling(start_server: Callable[..., Server]) -> Server:
    return start_server(**SCHEDULE_ENV)


@pytest.fixture
def sched_api(scheduling: Server) -> Iterator[Api]:
    helper = Api(scheduling)
    try:
        yield helper
    finally:
        helper.close()


# -- the tests ----------------------------------------------------------------------------------


def test_per_second_schedule_fires_turns_into_an_idle_session(sched_api: Api) -> None:
    http = sched_api.http
    session_id = sched_api.create_session(sched_api.llmsim_model(QUICK))
    schedule = create_schedule(http, session_id, "every-second", cron=EVERY_SECOND)

    wait_for(
        lambda: len(executions(http, schedule["id"])) >= 3,
        timeout=DEADLINE,
        what="three fires",
        interval=0.2,
    )
    paused = sched_api.ok(http.post(f"durable/schedules/{schedule['id']}/pause"))
    assert paused["enabled"] is False and paused["next_trigger_at"] is None
    found = settled_executions(http, schedule["id"], at_least=3)

    assert {e["trigger"] for e in found} == {"schedule"}
    due_times = [e["scheduled_at"] for e in found]
    assert len(set(due_times)) == len(due_times), "a due time fired twice"
    assert all(t.endswith(".000Z") for t in due_times), due_times  # on the second
    assert due_times[0] >= schedule["created_at"]
    # Every second from the first fire to the last fired once: none skipped, none doubled.
    first = datetime.fromisoformat(due_times[0])
    assert due_times == [format_ts(first + timedelta(seconds=i)) for i in range(len(found))]
    log = session_events(http, session_id)
    assert_fires_sound(log, schedule["id"], found)
    provenance = fired_inputs(log, schedule["id"])[0]["metadata"]
    assert provenance["initiator"] == "schedule"
    assert provenance["schedule_name"] == "every-second"
    stats = sched_api.ok(http.get(f"durable/schedules/{schedule['id']}/stats"))
    assert stats["total_executions"] == stats["successful_executions"] == len(found)


def test_fire_into_a_busy_session_queues_after_the_running_turn(sched_api: Api) -> None:
    http = sched_api.http
    # Every model call of the session takes 3 s: the running turn is still running a second
    # after it started, when the schedule is due.
    slow = {"response": {"type": "fixed", "text": "done"}, "latency_ms": 3000}
    session_id = sched_api.create_session(sched_api.llmsim_model(slow))
    running = sched_api.post_message(session_id, "a long job")["turn_id"]
    sched_api.wait_event(
        session_id, lambda e: e["type"] == "turn.started" and e["data"]["turn_id"] == running
    )
    schedule = create_schedule(
        http, session_id, "during", at=datetime.now(UTC) + timedelta(seconds=1)
    )

    [execution] = settled_executions(http, schedule["id"])
    assert (
        execution["trigger"] == "schedule"
        and execution["scheduled_at"] == (schedule["scheduled_at"])
    )
    log = session_events(http, session_id)
    assert_fires_sound(log, schedule["id"], [execution])
    [posted] = fired_inputs(log, schedule["id"])
    fired = execution["turn_id"]
    # The premise: the schedule fired while the first turn ran.
    assert (
        by_sequence(log, "turn.started", running)
        < posted["sequence"]
        < by_sequence(log, "turn.completed", running)
    ), "the schedule did not fire during the running turn"
    # The fired turn waited in the queue: it started after the running one completed.
    assert by_sequence(log, "turn.completed", running) < by_sequence(log, "turn.started", fired)
    turns = [e["data"]["turn_id"] for e in log if e["type"] == "turn.started"]
    assert turns == [running, fired]


def test_trigger_fires_at_once_paused_or_not(sched_api: Api) -> None:
    http = sched_api.http
    session_id = sched_api.create_session(sched_api.llmsim_model(QUICK))
    schedule = create_schedule(http, session_id, "yearly", cron=YEARLY)

    triggered = sched_api.ok(http.post(f"durable/schedules/{schedule['id']}/trigger"))
    assert triggered["turn_id"] is not None
    [execution] = settled_executions(http, schedule["id"])
    assert execution["id"] == triggered["execution_id"]
    assert execution["turn_id"] == triggered["turn_id"]
    assert execution["trigger"] == "manual"
    after = sched_api.ok(http.get(f"durable/schedules/{schedule['id']}"))
    assert after["next_trigger_at"] == schedule["next_trigger_at"], "a trigger moved the timer"
    assert after["last_triggered_at"] is not None

    # Paused, it still fires when triggered, and stays paused.
    sched_api.ok(http.post(f"durable/schedules/{schedule['id']}/pause"))
    again = sched_api.ok(http.post(f"durable/schedules/{schedule['id']}/trigger"))
    found = settled_executions(http, schedule["id"], at_least=2)
    assert {e["id"] for e in found} == {triggered["execution_id"], again["execution_id"]}
    assert {e["trigger"] for e in found} == {"manual"}
    paused = sched_api.ok(http.get(f"durable/schedules/{schedule['id']}"))
    assert paused["enabled"] is False and paused["next_trigger_at"] is None
    assert_fires_sound(session_events(http, session_id), schedule["id"], found)


async def test_active_schedule_count_follows_the_schedules(scheduling: Server) -> None:
    client = Everruns(api_key=scheduling.token, base_url=scheduling.api_url)
    helper = Api(scheduling)
    http = helper.http
    try:
        session_id = helper.create_session(helper.llmsim_model(QUICK))
        other_id = helper.create_session(helper.llmsim_model(QUICK))

        async def counts() -> tuple[int | None, int, int]:
            """(through the SDK's sessions.get, through GET /v1/sessions, the other session's
            in that list)."""
            fetched = await client.sessions.get(session_id)
            listed = helper.ok(http.get("sessions", params={"limit": 100}))["data"]
            in_list = {s["id"]: s["active_schedule_count"] for s in listed}
            return fetched.active_schedule_count, in_list[session_id], in_list[other_id]

        assert await counts() == (0, 0, 0)
        first = create_schedule(http, session_id, "first", cron=YEARLY)
        assert await counts() == (1, 1, 0)
        second = create_schedule(http, session_id, "second", cron=YEARLY)
        create_schedule(http, session_id, "disabled", cron=YEARLY, enabled=False)
        assert await counts() == (2, 2, 0)
        helper.ok(http.post(f"durable/schedules/{first['id']}/pause"))
        assert await counts() == (1, 1, 0)
        helper.ok(http.post(f"durable/schedules/{first['id']}/resume"))
        assert await counts() == (2, 2, 0)
        helper.ok(http.delete(f"durable/schedules/{second['id']}"), 204)
        assert await counts() == (1, 1, 0)
        helper.ok(http.delete(f"durable/schedules/{first['id']}"), 204)
        assert await counts() == (0, 0, 0)
    finally:
        helper.close()
        await client.close()


def test_kill9_across_a_one_shot_due_time_fires_it_once(scheduling: Server) -> None:
    helper = Api(scheduling)
    try:
        http = helper.http
        session_id = helper.create_session(helper.llmsim_model(QUICK))
        due = datetime.now(UTC) + timedelta(seconds=3)
        schedule = create_schedule(http, session_id, "once", at=due)
        scheduling.kill9()
        helper.close()
        wait_until(due + timedelta(milliseconds=500), "the due time to pass while down")

        scheduling.start()
        http = helper.http
        [execution] = settled_executions(http, schedule["id"])
        assert execution["trigger"] in ("schedule", "catch_up"), execution
        assert execution["scheduled_at"] == schedule["scheduled_at"]
        assert_fires_sound(session_events(http, session_id), schedule["id"], [execution])
        fired = helper.ok(http.get(f"durable/schedules/{schedule['id']}"))
        assert fired["enabled"] is False and fired["next_trigger_at"] is None
        assert helper.ok(http.get(f"sessions/{session_id}"))["active_schedule_count"] == 0

        # A second restart does not fire it again. The timer has looked at it once a schedule
        # made after the restart (its sentinel) has fired.
        scheduling.kill9()
        helper.close()
        scheduling.start()
        http = helper.http
        sentinel = create_schedule(http, session_id, "sentinel", cron=EVERY_SECOND)
        wait_for(
            lambda: executions(http, sentinel["id"]), timeout=DEADLINE, what="the sentinel's fire"
        )
        helper.ok(http.post(f"durable/schedules/{sentinel['id']}/pause"))
        settled = settled_executions(http, sentinel["id"])
        assert executions(http, schedule["id"]) == [execution]
        log = session_events(http, session_id)
        assert_fires_sound(log, schedule["id"], [execution])
        assert sum(e["type"] == "input.message" for e in log) == 1 + len(settled)
    finally:
        helper.close()
