"""Budgets in the turn loop, with llmsim's deterministic usage: each generation charged once to
every budget that applies, in its step; a spent budget seals the turn before its next model
call and pauses the session; a soft limit pauses; the warning is written once; an org budget
is shared; a new period resets. Budgets are made through the store here; the API's own tests
are tests/api/test_budgets.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import Api
from tests.engine.conftest import new_session, send, types_of, wait_turns_ended

from everloop import ids
from everloop.domain.budgets import Budget
from everloop.domain.timestamps import format_ts, now
from everloop.store import budgets as budget_store
from everloop.store.tables import budget_ledger, turns

pytestmark = pytest.mark.timeout(60)

# Calls `add` on "add", then answers: two generations per turn.
TOOLING = {
    "response": {"type": "fixed", "text": "done"},
    "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 1, "b": 2}}],
}
MATH = [{"ref": "test_math"}]


async def make_budget(
    api: Api,
    subject_type: str,
    subject_id: str,
    limit: float,
    *,
    soft_limit: float | None = None,
    currency: str = "tokens",
    period: dict[str, Any] | None = None,
    period_started_at: str | None = None,
) -> str:
    stamp = now()
    budget = Budget(
        id=ids.new_id("budget"),
        organization_id=api.org_id,
        subject_type=subject_type,  # type: ignore[arg-type]
        subject_id=subject_id,
        currency=currency,  # type: ignore[arg-type]
        limit=limit,
        soft_limit=soft_limit,
        period=period,
        period_started_at=period_started_at,
        balance=limit,
        status="active",
        metadata=None,
        warned_period=None,
        resumed_soft_limit=None,
        created_at=stamp,
        updated_at=stamp,
    )
    async with api.services.db.write() as conn:
        await budget_store.insert_budget(conn, budget)
    return budget.id


async def budget(api: Api, budget_id: str) -> Budget:
    async with api.services.db.read() as conn:
        found = await budget_store.get_budget(conn, api.org_id, budget_id)
    assert found is not None
    return found


async def ledger(api: Api, budget_id: str) -> list[dict[str, Any]]:
    async with api.services.db.read() as conn:
        rows = await conn.execute(
            select(budget_ledger).where(budget_ledger.c.budget_id == budget_id)
        )
        return [dict(r._mapping) for r in rows]


def generations(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in found if e["type"] == "llm.generation"]


def tokens_of(generation: dict[str, Any]) -> int:
    usage = generation["data"]["metadata"]["usage"]
    return int(
        usage["input_tokens"]
        + usage["output_tokens"]
        + (usage.get("cache_read_tokens") or 0)
        + (usage.get("cache_creation_tokens") or 0)
    )


async def session_status(api: Api, session_id: str) -> str:
    return str((await api.client.get(f"/v1/sessions/{session_id}")).json()["status"])


async def test_every_generation_is_charged_once_to_every_budget_that_applies(
    engine: Api,
) -> None:
    sid = await new_session(engine, TOOLING, capabilities=MATH)
    mine = await make_budget(engine, "session", sid, 1_000_000)
    org = await make_budget(engine, "org", engine.org_id, 1_000_000)
    other = await make_budget(engine, "session", await new_session(engine), 1_000_000)
    await send(engine, sid, "please add")
    found = await wait_turns_ended(engine, sid)
    made = generations(found)
    assert len(made) == 2
    spent = sum(tokens_of(g) for g in made)
    for budget_id in (mine, org):
        entries = await ledger(engine, budget_id)
        assert len(entries) == len(made)
        assert sum(e["amount"] for e in entries) == spent
        assert {e["meter_source"] for e in entries} == {"llm_tokens"}
        assert {e["session_id"] for e in entries} == {sid}
        assert (await budget(engine, budget_id)).balance == 1_000_000 - spent
    assert await ledger(engine, other) == []
    assert "budget.warning" not in types_of(found)


async def test_a_spent_budget_seals_the_turn_before_its_next_call(engine: Api) -> None:
    sid = await new_session(engine, TOOLING, capabilities=MATH)
    # Enough for the first call only: the second (after the tool) is refused.
    await send(engine, sid, "hello")
    first = generations(await wait_turns_ended(engine, sid))
    per_call = tokens_of(first[0])
    budget_id = await make_budget(engine, "session", sid, per_call)
    await send(engine, sid, "please add")
    found = await wait_turns_ended(engine, sid, 2)
    turn_events = [e for e in found if e["type"] in ("turn.sealed", "budget.exhausted")]
    assert [e["type"] for e in turn_events] == ["budget.exhausted", "turn.sealed"]
    sealed = turn_events[-1]["data"]
    assert sealed["reason"] == "budget" and budget_id in sealed["detail"]
    assert len(generations(found)) == 2  # one before this turn, one in it: none after
    spent = await budget(engine, budget_id)
    assert spent.status == "exhausted" and spent.balance <= 0
    assert len(await ledger(engine, budget_id)) == 1
    assert await session_status(engine, sid) == "paused"
    exhausted = next(e for e in found if e["type"] == "budget.exhausted")["data"]
    assert (exhausted["budget_id"], exhausted["currency"]) == (budget_id, "tokens")
    # A message to the paused session is recorded, and waits.
    posted = await send(engine, sid, "hello again")
    async with engine.services.db.read() as conn:
        status = (
            await conn.execute(select(turns.c.status).where(turns.c.id == posted["turn_id"]))
        ).scalar()
    assert status == "queued"
    assert await session_status(engine, sid) == "paused"


async def costs(api: Api, script: dict[str, Any], messages: list[str], **fields: Any) -> list[int]:
    """The tokens of each generation of ``messages`` sent one turn at a time to a fresh session
    without budgets (llmsim counts deterministically: the same texts cost the same)."""
    sid = await new_session(api, script, **fields)
    for count, text in enumerate(messages, start=1):
        await send(api, sid, text)
        found = await wait_turns_ended(api, sid, count)
    return [tokens_of(g) for g in generations(found)]


async def test_a_soft_limit_pauses_the_session(engine: Api) -> None:
    [first, _] = await costs(engine, TOOLING, ["please add"], capabilities=MATH)
    sid = await new_session(engine, TOOLING, capabilities=MATH)
    budget_id = await make_budget(engine, "session", sid, first * 100, soft_limit=first / 2)
    await send(engine, sid, "please add")
    found = await wait_turns_ended(engine, sid)
    kinds = types_of(found)
    assert kinds.count("budget.paused") == 1 and kinds[-1] == "turn.sealed"
    assert len(generations(found)) == 1  # the call after the tool was not made
    assert "budget.exhausted" not in kinds and "budget.warning" not in kinds
    assert (await budget(engine, budget_id)).status == "paused"
    assert await session_status(engine, sid) == "paused"


async def test_the_warning_is_written_once_per_period(engine: Api) -> None:
    script = {"response": {"type": "fixed", "text": "ok"}}
    texts = [f"message number {n}" for n in range(12)]
    spent = await costs(engine, script, texts)
    # All twelve fit; the first call after which 20 % or less is left is not the last.
    limit = sum(spent) * 1.01
    crossing = next(k for k in range(1, 13) if limit - sum(spent[:k]) <= 0.2 * limit)
    assert crossing < 12
    sid = await new_session(engine, script)
    budget_id = await make_budget(engine, "session", sid, limit)
    for count, text in enumerate(texts, start=1):
        await send(engine, sid, text)
        found = await wait_turns_ended(engine, sid, count)
    kinds = types_of(found)
    assert kinds.count("budget.warning") == 1 and kinds.count("turn.completed") == 12
    warned_after = [e["type"] for e in found if e["type"] in ("llm.generation", "budget.warning")]
    assert warned_after.index("budget.warning") == crossing  # right after that generation
    left = await budget(engine, budget_id)
    assert left.status == "active" and 0 < left.balance <= 0.2 * limit


async def test_an_org_budget_is_shared_by_its_sessions(engine: Api) -> None:
    one = await new_session(engine, TOOLING, capabilities=MATH)
    two = await new_session(engine, TOOLING, capabilities=MATH)
    budget_id = await make_budget(engine, "org", engine.org_id, 1_000_000)
    await send(engine, one, "hello")
    await send(engine, two, "hello there")
    spent = sum(tokens_of(g) for g in generations(await wait_turns_ended(engine, one)))
    spent += sum(tokens_of(g) for g in generations(await wait_turns_ended(engine, two)))
    entries = await ledger(engine, budget_id)
    assert {e["session_id"] for e in entries} == {one, two}
    assert (await budget(engine, budget_id)).balance == 1_000_000 - spent


async def test_a_new_period_resets_a_spent_budget(engine: Api) -> None:
    sid = await new_session(engine)
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    budget_id = await make_budget(
        engine,
        "session",
        sid,
        100,
        period={"type": "calendar", "unit": "month"},
        period_started_at=format_ts(last_month),
    )
    # Spent last month (a debit in the ledger): exhausted.
    spent = await budget(engine, budget_id)
    async with engine.services.db.write() as conn:
        await budget_store.add_entry(
            conn, spent, amount=100, meter_source="llm_tokens", created_at=format_ts(last_month)
        )
        await budget_store.save_budget(conn, replace(spent, balance=0.0, status="exhausted"))
    await send(engine, sid, "hello")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    reset = await budget(engine, budget_id)
    assert reset.status == "active"
    assert reset.period_started_at is not None and reset.period_started_at > format_ts(last_month)
    sources = [e["meter_source"] for e in await ledger(engine, budget_id)]
    assert sorted(sources) == ["llm_tokens", "llm_tokens", "period_reset"]  # last month's, now
    assert reset.balance == 100 - tokens_of(generations(found)[0])


async def turn_status(api: Api, turn_id: str) -> str | None:
    async with api.services.db.read() as conn:
        found = await conn.execute(select(turns.c.status).where(turns.c.id == turn_id))
        return found.scalar()


async def test_a_spent_budget_needs_a_top_up_then_resume_runs_the_queued_message(
    engine: Api,
) -> None:
    sid = await new_session(engine, TOOLING, capabilities=MATH)
    [first, _] = await costs(engine, TOOLING, ["please add"], capabilities=MATH)
    created = await engine.client.post(
        "/v1/budgets",
        json={"subject_type": "session", "subject_id": sid, "currency": "tokens", "limit": first},
    )
    assert created.status_code == 201, created.text
    budget_id = created.json()["id"]
    await send(engine, sid, "please add")
    await wait_turns_ended(engine, sid)
    assert await session_status(engine, sid) == "paused"
    queued = await send(engine, sid, "hello once more")
    # Resume alone does not lift a spent budget.
    resumed = await engine.client.post(f"/v1/sessions/{sid}/resume")
    assert resumed.json() == {"resumed_budgets": 0, "session_id": sid}
    assert await session_status(engine, sid) == "paused"
    assert await turn_status(engine, queued["turn_id"]) == "queued"
    topped = await engine.client.post(f"/v1/budgets/{budget_id}/top-up", json={"amount": 10_000})
    assert topped.json()["status"] == "active"
    assert await session_status(engine, sid) == "paused"  # until resumed
    assert await turn_status(engine, queued["turn_id"]) == "queued"
    resumed = await engine.client.post(f"/v1/sessions/{sid}/resume")
    assert resumed.status_code == 200, resumed.text
    found = await wait_turns_ended(engine, sid, 2)
    assert types_of(found)[-2:] == ["turn.completed", "session.idled"]
    assert await turn_status(engine, queued["turn_id"]) == "completed"
    assert await session_status(engine, sid) == "idle"
    entries = await ledger(engine, budget_id)
    assert len([e for e in entries if e["meter_source"] == "llm_tokens"]) == len(generations(found))


async def test_resume_lifts_a_soft_limit_pause_and_it_does_not_pause_again(engine: Api) -> None:
    [first, _] = await costs(engine, TOOLING, ["please add"], capabilities=MATH)
    sid = await new_session(engine, TOOLING, capabilities=MATH)
    created = await engine.client.post(
        "/v1/budgets",
        json={
            "subject_type": "session",
            "subject_id": sid,
            "currency": "tokens",
            "limit": first * 100,
            "soft_limit": first / 2,
        },
    )
    budget_id = created.json()["id"]
    await send(engine, sid, "please add")
    await wait_turns_ended(engine, sid)
    queued = await send(engine, sid, "then this")
    assert await session_status(engine, sid) == "paused"
    check = (await engine.client.get(f"/v1/sessions/{sid}/budget-check")).json()
    assert (check["action"], check["budget_id"]) == ("pause", budget_id)
    resumed = await engine.client.post(f"/v1/sessions/{sid}/resume")
    assert resumed.json()["resumed_budgets"] == 1
    found = await wait_turns_ended(engine, sid, 2)
    kinds = types_of(found)
    assert kinds.count("budget.resumed") == 1 and kinds.count("budget.paused") == 1
    assert kinds[-2:] == ["turn.completed", "session.idled"]
    assert await turn_status(engine, queued["turn_id"]) == "completed"
    assert (await budget(engine, budget_id)).status == "active"
