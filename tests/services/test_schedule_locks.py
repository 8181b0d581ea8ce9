"""A delete of a schedule that meets its fire halfway (PostgreSQL, where both run at once).

A fire holds its schedule's row from its claim to its commit and records an execution that
references it. A delete that did not wait for that lock deleted the schedule's executions
before the fire committed its own, then failed on the foreign key once it did: a session's
delete (a 500, the session not deleted) and the agent's ``cancel_schedule`` naming it. The
fire's transaction is held open here by hand, the way the timer runs it (``claim``, then
``record_fire``), so the delete finds it halfway every time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text

from everloop.capabilities.base import ToolContext
from everloop.domain.schedules import parse_instant
from everloop.services.schedule_firing import record_fire, utc_now
from everloop.store import schedules as store
from everloop.store.tables import schedule_executions
from tests.conftest import POSTGRES_URL, Api

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="SQLite serializes writers: a delete cannot meet a fire halfway"
)

FAR_FUTURE = "9999-01-01T00:00:00.000Z"
WAIT = 20.0


async def schedule_in(api: Api, session_id: str, name: str) -> str:
    body: dict[str, Any] = {
        "name": name,
        "cron_expression": "0 0 1 1 *",
        "timezone": "UTC",
        "target": {
            "type": "workflow",
            "name": "session.run",
            "input": {"session_id": session_id, "message": "tick"},
        },
    }
    created = await api.client.post("/v1/durable/schedules", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def wait_until_blocked(api: Api) -> None:
    """Until some transaction of this database waits for a row lock."""
    deadline = time.monotonic() + WAIT
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'"
    )
    while True:
        async with api.services.db.read() as conn:
            if (await conn.execute(query)).scalar():
                return
        assert time.monotonic() < deadline, "the delete never waited for the fire"
        await asyncio.sleep(0.02)


async def hold_a_fire(api: Api, schedule_id: str, delete: Any) -> Any:
    """Run ``delete()`` while a fire of the schedule is uncommitted; its response once the fire
    has committed."""
    async with api.services.db.write() as conn:
        schedule = await store.claim(conn, schedule_id, FAR_FUTURE)
        assert schedule is not None and schedule.next_trigger_at is not None
        due = parse_instant(schedule.next_trigger_at, field="next_trigger_at")
        fired = await record_fire(
            conn, schedule, trigger="schedule", due=due, now=utc_now(), executor="test"
        )
        assert fired.turn_id is not None
        deleting = asyncio.create_task(delete())
        await wait_until_blocked(api)
    return await deleting


async def executions_of(api: Api, schedule_id: str) -> int:
    async with api.services.db.read() as conn:
        query = select(func.count()).where(schedule_executions.c.schedule_id == schedule_id)
        return int((await conn.execute(query)).scalar() or 0)


async def test_deleting_a_session_waits_for_its_schedules_fire(api: Api) -> None:
    session_id = (await api.client.post("/v1/sessions", json={})).json()["id"]
    schedule_id = await schedule_in(api, session_id, "yearly")

    response = await hold_a_fire(
        api, schedule_id, lambda: api.client.delete(f"/v1/sessions/{session_id}")
    )

    assert response.status_code == 204, response.text
    assert (await api.client.get(f"/v1/sessions/{session_id}")).status_code == 404
    assert (await api.client.get(f"/v1/durable/schedules/{schedule_id}")).status_code == 404
    assert await executions_of(api, schedule_id) == 0


async def test_deleting_a_schedule_waits_for_its_fire(api: Api) -> None:
    session_id = (await api.client.post("/v1/sessions", json={})).json()["id"]
    schedule_id = await schedule_in(api, session_id, "yearly")

    response = await hold_a_fire(
        api, schedule_id, lambda: api.client.delete(f"/v1/durable/schedules/{schedule_id}")
    )

    assert response.status_code == 204, response.text
    assert await executions_of(api, schedule_id) == 0


async def test_the_cancel_tool_by_name_waits_for_the_schedules_fire(api: Api) -> None:
    session_id = (await api.client.post("/v1/sessions", json={})).json()["id"]
    schedule_id = await schedule_in(api, session_id, "yearly")

    async def cancel_by_name() -> Any:
        # The agent's cancel_schedule, in its step's transaction, naming the schedule.
        async with api.services.db.write() as conn:
            context = ToolContext(session_id, api.org_id, "turn_x", "call_x", connection=conn)
            return await api.services.schedules.cancel_for_session(conn, context, "yearly")

    cancelled = await hold_a_fire(api, schedule_id, cancel_by_name)

    assert cancelled == {"cancelled": schedule_id, "name": "yearly"}
    assert await executions_of(api, schedule_id) == 0
