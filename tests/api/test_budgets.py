"""Budgets through the API: CRUD, bad input (a 422 naming the field, nothing written),
top-ups and the ledger, checks, the budgets of a session across subject kinds, resume, and
another organization's budgets.

Spending is arranged with the real meter (``BudgetMeter.charge``, as the turn loop calls it),
not by writing balances."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from everloop.domain.event_log import EventContext
from everloop.domain.usage import TokenUsage
from everloop.services.budget_meter import BudgetMeter
from everloop.store.sql import Store
from everloop.store.tables import budget_ledger, budgets
from tests.api.conftest import OtherOrg, add_user_to_org, assert_error, create_agent, make_org
from tests.conftest import Api
from tests.engine.conftest import scripted_model, send, wait_turns_ended


async def new_session(api: Api, **fields: Any) -> dict[str, Any]:
    created = await api.client.post("/v1/sessions", json=fields)
    assert created.status_code == 201, created.text
    return dict(created.json())


async def create(api: Api, **fields: Any) -> dict[str, Any]:
    response = await api.client.post("/v1/budgets", json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def session_budget(api: Api, session_id: str, **fields: Any) -> dict[str, Any]:
    body = {"subject_type": "session", "subject_id": session_id, "currency": "tokens"}
    return await create(api, **(body | {"limit": 100} | fields))


async def spend(api: Api, session_id: str, tokens: int, cost_usd: float = 0.0) -> list[str]:
    """Charge one generation of ``tokens`` to the session's budgets; the events it writes."""
    async with api.services.db.write() as conn:
        found = await BudgetMeter(api.services.db).charge(
            conn,
            session_id,
            ref_id=uuid.uuid4().hex,
            usage=TokenUsage(input_tokens=tokens),
            cost_usd=cost_usd,
            context=EventContext(),
        )
    return [event.type for event in found]


async def get(api: Api, budget_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/budgets/{budget_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def ledger(api: Api, budget_id: str, **params: int) -> list[dict[str, Any]]:
    response = await api.client.get(f"/v1/budgets/{budget_id}/ledger", params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


async def rows(api: Api) -> tuple[int, int]:
    async with api.services.db.read() as conn:
        counted = [
            await conn.scalar(select(func.count()).select_from(table))
            for table in (budgets, budget_ledger)
        ]
    return int(counted[0] or 0), int(counted[1] or 0)


async def check(api: Api, path: str) -> dict[str, Any]:
    response = await api.client.get(path)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def set_session_status(api: Api, session_id: str, status: str) -> None:
    """What the turn loop does when a budget stops a session (``paused``)."""
    async with api.services.db.write() as conn:
        assert await Store().update_session(conn, api.org_id, session_id, {"status": status})


async def session_status(api: Api, session_id: str) -> str:
    response = await api.client.get(f"/v1/sessions/{session_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


# -- CRUD --------------------------------------------------------------------------------------


async def test_create_read_update_delete(api: Api) -> None:
    session = await new_session(api)
    created = await session_budget(
        api,
        session["id"],
        limit=1000,
        soft_limit=800,
        period={"type": "calendar", "unit": "month"},
        metadata={"team": "research", "tags": ["a"]},
    )
    assert created["id"].startswith("budget_")
    assert created["organization_id"] == api.org_id
    assert (created["subject_type"], created["subject_id"]) == ("session", session["id"])
    assert (created["limit"], created["soft_limit"], created["balance"]) == (1000, 800, 1000)
    assert created["status"] == "active" and created["currency"] == "tokens"
    assert created["period"] == {"type": "calendar", "unit": "month"}
    month = datetime.now(UTC).strftime("%Y-%m-01T00:00:00.000Z")
    assert created["period_started_at"] == month
    assert created["metadata"] == {"team": "research", "tags": ["a"]}
    budget_id = created["id"]
    assert await get(api, budget_id) == created
    listed = await api.client.get("/v1/budgets")
    assert listed.status_code == 200 and listed.json() == [created]

    patched = await api.client.patch(
        f"/v1/budgets/{budget_id}", json={"limit": 1500, "metadata": {"team": "ops"}}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["limit"], body["balance"], body["soft_limit"]) == (1500, 1500, 800)
    assert body["metadata"] == {"team": "ops"} and body["updated_at"] >= created["updated_at"]
    cleared = await api.client.patch(f"/v1/budgets/{budget_id}", json={"soft_limit": None})
    assert cleared.status_code == 200 and cleared.json()["soft_limit"] is None
    assert await get(api, budget_id) == cleared.json()

    deleted = await api.client.delete(f"/v1/budgets/{budget_id}")
    assert deleted.status_code == 204
    assert_error(await api.client.get(f"/v1/budgets/{budget_id}"), 404, "not_found")
    assert (await api.client.get("/v1/budgets")).json() == []
    for method, path, body in (
        ("PATCH", "", {"limit": 5}),
        ("DELETE", "", None),
        ("POST", "/top-up", {"amount": 5}),
        ("GET", "/ledger", None),
        ("GET", "/check", None),
    ):
        response = await api.client.request(method, f"/v1/budgets/{budget_id}{path}", json=body)
        assert_error(response, 404, "not_found")
    # It no longer applies to the session.
    assert (await api.client.get(f"/v1/sessions/{session['id']}/budgets")).json() == []


async def test_patch_status_disabled_is_a_delete(api: Api) -> None:
    session = await new_session(api)
    budget_id = (await session_budget(api, session["id"]))["id"]
    patched = await api.client.patch(f"/v1/budgets/{budget_id}", json={"status": "disabled"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "disabled"
    assert_error(await api.client.get(f"/v1/budgets/{budget_id}"), 404)


async def test_periods_in_every_shape(api: Api) -> None:
    org = {"subject_type": "organization", "subject_id": api.org_id, "currency": "usd"}
    duration = await create(api, **org, limit=5, period={"type": "duration", "seconds": 3600})
    assert duration["period"] == {"type": "duration", "seconds": 3600}
    rolling = await create(api, **org, limit=5, period={"type": "rolling", "window": "24h"})
    assert rolling["period"] == {"type": "rolling", "window": "24h", "seconds": 86400}
    started = datetime.fromisoformat(rolling["period_started_at"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - started).total_seconds()) < 3600
    day = await create(api, **org, limit=5, period={"type": "calendar", "unit": "day"})
    assert day["period_started_at"] == datetime.now(UTC).strftime("%Y-%m-%dT00:00:00.000Z")
    plain = await create(api, **org, limit=5)
    assert plain["period"] is None and plain["period_started_at"] is None
    assert duration["subject_type"] == "org"
    # Readers return what was accepted.
    for made in (duration, rolling, day, plain):
        assert await get(api, made["id"]) == made


async def test_list_filters(api: Api) -> None:
    first, second = await new_session(api), await new_session(api)
    mine = await session_budget(api, first["id"])
    theirs = await session_budget(api, second["id"])
    org = await create(api, subject_type="org", subject_id=api.org_id, currency="credits", limit=10)

    async def listed(**params: str) -> list[str]:
        response = await api.client.get("/v1/budgets", params=params)
        assert response.status_code == 200, response.text
        return [b["id"] for b in response.json()]

    assert await listed() == sorted([mine["id"], theirs["id"], org["id"]])
    assert await listed(subject_type="session") == sorted([mine["id"], theirs["id"]])
    assert await listed(subject_id=second["id"]) == [theirs["id"]]
    assert await listed(subject_type="organization") == [org["id"]]
    assert await listed(subject_type="org", subject_id=api.org_id) == [org["id"]]
    assert await listed(subject_type="agent") == []
    assert_error(await api.client.get("/v1/budgets?subject_type=team"), 422, field="subject_type")


# -- bad input ---------------------------------------------------------------------------------


async def test_bad_input_names_the_field_and_writes_nothing(api: Api, other_org: OtherOrg) -> None:
    session = await new_session(api)
    theirs = await other_org.client.post("/v1/sessions", json={})
    assert theirs.status_code == 201, theirs.text
    outsider = uuid.uuid4().hex
    await make_org(api, "Elsewhere")
    good = {"subject_type": "session", "subject_id": session["id"], "currency": "usd", "limit": 10}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"subject_type": "team"}, "subject_type"),
        ({"subject_type": "app"}, "subject_type"),
        ({"subject_id": "session_" + "0" * 32}, "subject_id"),
        ({"subject_id": theirs.json()["id"]}, "subject_id"),  # another org's: unknown
        ({"subject_type": "org", "subject_id": other_org.organization_id}, "subject_id"),
        ({"subject_type": "agent", "subject_id": "agent_" + "0" * 32}, "subject_id"),
        ({"subject_type": "user", "subject_id": outsider}, "subject_id"),
        ({"subject_type": "user", "subject_id": other_org.user_id}, "subject_id"),
        ({"subject_type": "user", "subject_id": "not-a-user"}, "subject_id"),
        ({"subject_id": ""}, "subject_id"),
        ({"currency": "eur"}, "currency"),
        ({"limit": 0}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": 1e300}, "limit"),
        ({"limit": "lots"}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"limit": True}, "limit"),
        ({"soft_limit": 11}, "soft_limit"),
        ({"soft_limit": -1}, "soft_limit"),
        ({"period": {"type": "weekly"}}, "period.type"),
        ({"period": {"type": "calendar", "unit": "fortnight"}}, "period.unit"),
        ({"period": {"type": "rolling", "window": "soon"}}, "period.window"),
        ({"period": {"type": "duration", "seconds": 5}}, "period.seconds"),
        ({"period": {"type": "duration"}}, "period.seconds"),
        ({"period": {"type": "duration", "seconds": "3600"}}, "period.seconds"),
    ]
    before = await rows(api)
    for change, field in cases:
        response = await api.client.post("/v1/budgets", json=good | change)
        assert_error(response, 422, field=field)
    for missing in ("subject_type", "subject_id", "currency", "limit"):
        body = {k: v for k, v in good.items() if k != missing}
        assert_error(await api.client.post("/v1/budgets", json=body), 422, field=missing)
    # Non-finite numbers (Python's JSON reads them) are refused too.
    for text, field in (
        ('"limit": NaN', "limit"),
        ('"limit": Infinity', "limit"),
        ('"limit": 10, "soft_limit": NaN', "soft_limit"),
    ):
        head = json.dumps({"subject_type": "session", "subject_id": session["id"]})
        raw = head[:-1] + f', "currency": "usd", {text}}}'
        response = await api.client.post(
            "/v1/budgets", content=raw, headers={"content-type": "application/json"}
        )
        assert_error(response, 422, field=field)
    assert await rows(api) == before


async def test_bad_updates_and_top_ups_change_nothing(api: Api) -> None:
    session = await new_session(api)
    made = await session_budget(api, session["id"], limit=100, soft_limit=50)
    budget_id = made["id"]
    for body, field in (
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": 40}, "soft_limit"),  # below the soft limit
        ({"soft_limit": 101}, "soft_limit"),
        ({"soft_limit": -0.5}, "soft_limit"),
        ({"status": "exhausted"}, "status"),
        ({"status": "archived"}, "status"),
        ({"limit": 200, "status": "exhausted"}, "status"),  # all or nothing
    ):
        response = await api.client.patch(f"/v1/budgets/{budget_id}", json=body)
        assert_error(response, 422, field=field)
    for amount in (0, -10, "x", "5", True, None):
        response = await api.client.post(f"/v1/budgets/{budget_id}/top-up", json={"amount": amount})
        assert_error(response, 422, field="amount")
    response = await api.client.post(f"/v1/budgets/{budget_id}/top-up", json={})
    assert_error(response, 422, field="amount")
    assert await get(api, budget_id) == made
    assert await ledger(api, budget_id) == []
    malformed = await api.client.get("/v1/budgets/budget_nope")
    assert_error(malformed, 422, field="budget_id")


# -- top-ups and the ledger --------------------------------------------------------------------


async def test_top_up_and_ledger_entries(api: Api) -> None:
    session = await new_session(api)
    budget_id = (await session_budget(api, session["id"], limit=100))["id"]
    assert await spend(api, session["id"], 30) == []
    topped = await api.client.post(
        f"/v1/budgets/{budget_id}/top-up", json={"amount": 50, "description": "more, please"}
    )
    assert topped.status_code == 200, topped.text
    assert (topped.json()["balance"], topped.json()["limit"]) == (120, 100)
    await api.client.post(f"/v1/budgets/{budget_id}/top-up", json={"amount": 5})
    entries = await ledger(api, budget_id)
    assert [e["meter_source"] for e in entries] == ["top_up", "top_up", "llm_tokens"]
    newest, middle, oldest = entries
    assert (newest["amount"], newest["description"], newest["ref_type"]) == (-5, None, "manual")
    assert (middle["amount"], middle["description"]) == (-50, "more, please")
    assert (oldest["amount"], oldest["session_id"], oldest["ref_type"]) == (
        30,
        session["id"],
        "llm_generation",
    )
    assert all(e["budget_id"] == budget_id and e["id"].startswith("ledger_") for e in entries)
    assert [e["id"] for e in await ledger(api, budget_id, limit=2)] == [
        newest["id"],
        middle["id"],
    ]
    assert [e["id"] for e in await ledger(api, budget_id, limit=2, offset=2)] == [oldest["id"]]
    # The balance is the limit less the ledger.
    now = await get(api, budget_id)
    assert now["balance"] == now["limit"] - sum(e["amount"] for e in entries) == 125
    assert_error(await api.client.get(f"/v1/budgets/{budget_id}/ledger?limit=0"), 422)


async def test_a_top_up_or_a_higher_limit_makes_an_exhausted_budget_active(api: Api) -> None:
    session = await new_session(api)
    budget_id = (await session_budget(api, session["id"], limit=100))["id"]
    assert await spend(api, session["id"], 110) == ["budget.exhausted"]
    spent = await get(api, budget_id)
    assert (spent["status"], spent["balance"]) == ("exhausted", -10)
    # Not enough: still exhausted; a status cannot be set without balance.
    topped = await api.client.post(f"/v1/budgets/{budget_id}/top-up", json={"amount": 10})
    assert topped.json()["status"] == "exhausted" and topped.json()["balance"] == 0
    refused = await api.client.patch(f"/v1/budgets/{budget_id}", json={"status": "active"})
    assert_error(refused, 422, field="status")
    topped = await api.client.post(f"/v1/budgets/{budget_id}/top-up", json={"amount": 1})
    assert (topped.json()["status"], topped.json()["balance"]) == ("active", 1)

    assert await spend(api, session["id"], 1) == ["budget.exhausted"]
    raised = await api.client.patch(f"/v1/budgets/{budget_id}", json={"limit": 150})
    assert (raised.json()["status"], raised.json()["balance"]) == ("active", 50)
    lowered = await api.client.patch(f"/v1/budgets/{budget_id}", json={"limit": 90})
    assert (lowered.json()["status"], lowered.json()["balance"]) == ("exhausted", -10)
    entries = await ledger(api, budget_id)
    assert lowered.json()["balance"] == 90 - sum(e["amount"] for e in entries)


async def test_a_top_up_with_an_idempotency_key_credits_once(api: Api) -> None:
    session = await new_session(api)
    budget_id = (await session_budget(api, session["id"], limit=100))["id"]
    headers = {"Idempotency-Key": "top-up-1"}
    for _ in range(2):
        response = await api.client.post(
            f"/v1/budgets/{budget_id}/top-up", json={"amount": 7}, headers=headers
        )
        assert response.status_code == 200 and response.json()["balance"] == 107
    assert len(await ledger(api, budget_id)) == 1


# -- checks ------------------------------------------------------------------------------------


async def test_check_of_one_budget(api: Api) -> None:
    session = await new_session(api)
    budget_id = (await session_budget(api, session["id"], limit=100, soft_limit=90))["id"]
    path = f"/v1/budgets/{budget_id}/check"
    calm = await check(api, path)
    assert calm == {
        "action": "continue",
        "budget_id": budget_id,
        "balance": 100,
        "currency": "tokens",
        "message": None,
        "error_code": None,
        "error_fields": None,
    }
    assert await spend(api, session["id"], 80) == ["budget.warning"]
    warned = await check(api, path)
    assert (warned["action"], warned["balance"], warned["error_code"]) == ("warn", 20, None)
    assert "20%" in warned["message"]
    assert await spend(api, session["id"], 11) == ["budget.paused"]
    paused = await check(api, path)
    assert (paused["action"], paused["error_code"]) == ("pause", "budget_paused")
    assert paused["error_fields"] == {
        "budget_id": budget_id,
        "balance": 9,
        "limit": 100,
        "currency": "tokens",
    }
    assert await spend(api, session["id"], 9) == ["budget.exhausted"]
    stopped = await check(api, path)
    assert (stopped["action"], stopped["error_code"], stopped["balance"]) == (
        "stop",
        "budget_exhausted",
        0,
    )
    assert stopped["message"]


# -- a session's budgets -----------------------------------------------------------------------


async def test_the_budgets_of_a_session_across_subject_kinds(api: Api) -> None:
    agent = await create_agent(api, "budgeted")
    session = await new_session(api, agent_id=agent["id"])
    other = await new_session(api)
    user_id = session["owner"]["subject_id"]  # 32 hex; sessions record it with dashes
    assert session["resolved_owner_user_id"].replace("-", "") == user_id
    own = await session_budget(api, session["id"])
    by_agent = await create(
        api, subject_type="agent", subject_id=agent["id"], currency="usd", limit=10
    )
    by_user = await create(
        api, subject_type="user", subject_id=user_id, currency="credits", limit=5
    )
    assert by_user["subject_id"] == session["resolved_owner_user_id"]
    by_org = await create(
        api, subject_type="organization", subject_id=api.org_id, currency="tokens", limit=100_000
    )
    elsewhere = await session_budget(api, other["id"])
    # A member of the organization other than the caller has budgets of their own.
    member = uuid.uuid4().hex
    async with api.services.db.write() as conn:
        await Store().insert_user(conn, member, "Member", "2026-01-01T00:00:00.000Z")
    await add_user_to_org(api, api.org_id, member)
    theirs = await create(api, subject_type="user", subject_id=member, currency="usd", limit=1)

    response = await api.client.get(f"/v1/sessions/{session['id']}/budgets")
    assert response.status_code == 200, response.text
    found = {b["id"] for b in response.json()}
    assert found == {own["id"], by_agent["id"], by_user["id"], by_org["id"]}
    assert elsewhere["id"] not in found and theirs["id"] not in found
    others = {b["id"] for b in (await api.client.get(f"/v1/sessions/{other['id']}/budgets")).json()}
    assert others == {elsewhere["id"], by_user["id"], by_org["id"]}

    # Each subject's budget is charged in its currency; the check picks the most restrictive.
    path = f"/v1/sessions/{session['id']}/budget-check"
    assert (await check(api, path))["action"] == "continue"
    await spend(api, session["id"], 4200, cost_usd=1.5)  # credits: 4.2 of 5 spent
    after = {
        b["id"]: b for b in (await api.client.get(f"/v1/sessions/{session['id']}/budgets")).json()
    }
    assert after[by_user["id"]]["balance"] == 5 - 4.2
    assert after[by_agent["id"]]["balance"] == 10 - 1.5
    assert after[own["id"]]["balance"] == 100 - 4200
    assert after[own["id"]]["status"] == "exhausted"
    stopped = await check(api, path)
    assert (stopped["action"], stopped["budget_id"]) == ("stop", own["id"])
    assert stopped["error_code"] == "budget_exhausted" and stopped["currency"] == "tokens"
    # The other session shares the user's and the org's budgets: the user's is low.
    shared = await check(api, f"/v1/sessions/{other['id']}/budget-check")
    assert (shared["action"], shared["budget_id"]) == ("warn", by_user["id"])
    assert shared["error_code"] is None
    paused = await api.client.patch(f"/v1/budgets/{by_org['id']}", json={"status": "paused"})
    assert paused.status_code == 200, paused.text
    shared = await check(api, f"/v1/sessions/{other['id']}/budget-check")
    assert (shared["action"], shared["budget_id"], shared["error_code"]) == (
        "pause",
        by_org["id"],
        "budget_paused",
    )
    unbudgeted = await check(api, f"/v1/sessions/{(await new_session(api))['id']}/budget-check")
    assert unbudgeted["action"] == "pause"  # the org's budget applies to every session


async def test_a_subagent_counts_against_its_root_sessions_budget(api: Api) -> None:
    await api.services.start_engine()
    spawn = {"name": "spawn_subagent", "arguments": {"name": "helper", "task": "research"}}
    model = await scripted_model(
        api,
        {"response": {"type": "fixed", "text": "hi"}, "tool_calls": [{"when": "hello", **spawn}]},
    )
    parent = await new_session(api, model_id=model, capabilities=[{"ref": "subagents"}])
    root = await session_budget(api, parent["id"], limit=1000)
    await send(api, parent["id"], "hello")
    await wait_turns_ended(api, parent["id"])
    [task] = (await api.client.get(f"/v1/sessions/{parent['id']}/tasks")).json()
    child_id = task["links"]["child_session_id"]
    own = await session_budget(api, child_id, limit=10)
    response = await api.client.get(f"/v1/sessions/{child_id}/budgets")
    assert {b["id"] for b in response.json()} == {own["id"], root["id"]}
    paused = await api.client.patch(f"/v1/budgets/{root['id']}", json={"status": "paused"})
    assert paused.status_code == 200, paused.text
    verdict = await check(api, f"/v1/sessions/{child_id}/budget-check")
    assert (verdict["action"], verdict["budget_id"]) == ("pause", root["id"])
    resumed = await api.client.post(f"/v1/sessions/{child_id}/resume", json={})
    assert resumed.json()["resumed_budgets"] == 1


async def test_a_session_without_budgets(api: Api) -> None:
    session = await new_session(api)
    assert (await api.client.get(f"/v1/sessions/{session['id']}/budgets")).json() == []
    result = await check(api, f"/v1/sessions/{session['id']}/budget-check")
    assert result == {
        "action": "continue",
        "budget_id": None,
        "balance": None,
        "currency": None,
        "message": None,
        "error_code": None,
        "error_fields": None,
    }
    resumed = await api.client.post(f"/v1/sessions/{session['id']}/resume", json={})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json() == {"resumed_budgets": 0, "session_id": session["id"]}
    assert await session_status(api, session["id"]) == "started"


# -- resume ------------------------------------------------------------------------------------


async def test_resume_lifts_paused_budgets_and_the_paused_session(api: Api) -> None:
    session = await new_session(api)
    sid = session["id"]
    own = await session_budget(api, sid, limit=100, soft_limit=50)
    org = await create(api, subject_type="org", subject_id=api.org_id, currency="usd", limit=9)
    assert await spend(api, sid, 60) == ["budget.paused"]
    await api.client.patch(f"/v1/budgets/{org['id']}", json={"status": "paused"})
    await set_session_status(api, sid, "paused")

    response = await api.client.post(f"/v1/sessions/{sid}/resume", json={})
    assert response.status_code == 200, response.text
    assert response.json() == {"resumed_budgets": 2, "session_id": sid}
    assert (await get(api, own["id"]))["status"] == "active"
    assert (await get(api, org["id"]))["status"] == "active"
    assert await session_status(api, sid) == "idle"
    listed = await api.client.get(f"/v1/sessions/{sid}/events", params={"types": "budget.resumed"})
    resumed = [e for e in listed.json()["data"] if e["type"] == "budget.resumed"]
    assert sorted(e["data"]["budget_id"] for e in resumed) == sorted([own["id"], org["id"]])
    assert {e["data"]["currency"] for e in resumed} == {"tokens", "usd"}
    # Nothing left to resume; and the soft limit it cleared does not pause it again.
    again = await api.client.post(f"/v1/sessions/{sid}/resume", json={})
    assert again.json()["resumed_budgets"] == 0
    assert await spend(api, sid, 5) == []
    assert (await get(api, own["id"]))["status"] == "active"


async def test_resume_starts_the_queued_turn_of_a_paused_session(api: Api) -> None:
    # A message recorded while nothing runs turns (its enqueue fails; it stays queued), in a
    # session the loop paused.
    model = await scripted_model(api, {"response": {"type": "fixed", "text": "done"}})
    session = await new_session(api, model_id=model)
    sid = session["id"]
    budget_id = (await session_budget(api, sid, limit=100))["id"]
    await api.client.patch(f"/v1/budgets/{budget_id}", json={"status": "paused"})
    await send(api, sid, "queued while paused")
    await set_session_status(api, sid, "paused")
    await api.services.engine.launch(api.services.runner)
    response = await api.client.post(f"/v1/sessions/{sid}/resume", json={})
    assert response.json()["resumed_budgets"] == 1
    found = await wait_turns_ended(api, sid)
    assert "turn.completed" in [e["type"] for e in found]
    assert await session_status(api, sid) == "idle"


async def test_resume_does_not_lift_an_exhausted_budget(api: Api) -> None:
    session = await new_session(api)
    sid = session["id"]
    budget_id = (await session_budget(api, sid, limit=100))["id"]
    assert await spend(api, sid, 120) == ["budget.exhausted"]
    await set_session_status(api, sid, "paused")
    response = await api.client.post(f"/v1/sessions/{sid}/resume", json={})
    assert response.json()["resumed_budgets"] == 0
    assert await session_status(api, sid) == "paused"
    assert (await get(api, budget_id))["status"] == "exhausted"
    # A top-up makes it active; then a resume (nothing to resume) lifts the session.
    topped = await api.client.post(f"/v1/budgets/{budget_id}/top-up", json={"amount": 100})
    assert topped.json()["status"] == "active"
    response = await api.client.post(f"/v1/sessions/{sid}/resume", json={})
    assert response.json()["resumed_budgets"] == 0
    assert await session_status(api, sid) == "idle"


async def test_a_session_that_is_not_paused_keeps_its_status(api: Api) -> None:
    session = await new_session(api)
    sid = session["id"]
    budget_id = (await session_budget(api, sid, limit=100))["id"]
    await api.client.patch(f"/v1/budgets/{budget_id}", json={"status": "paused"})
    await set_session_status(api, sid, "active")
    response = await api.client.post(f"/v1/sessions/{sid}/resume", json={})
    assert response.json()["resumed_budgets"] == 1
    assert await session_status(api, sid) == "active"


# -- other organizations -----------------------------------------------------------------------


async def test_another_orgs_budgets_are_404(api: Api, other_org: OtherOrg) -> None:
    session = await new_session(api)
    budget_id = (await session_budget(api, session["id"]))["id"]
    paused = await api.client.patch(f"/v1/budgets/{budget_id}", json={"status": "paused"})
    assert paused.status_code == 200
    before = await rows(api)
    for method, path, body in (
        ("GET", f"/v1/budgets/{budget_id}", None),
        ("PATCH", f"/v1/budgets/{budget_id}", {"limit": 1}),
        ("DELETE", f"/v1/budgets/{budget_id}", None),
        ("POST", f"/v1/budgets/{budget_id}/top-up", {"amount": 5}),
        ("GET", f"/v1/budgets/{budget_id}/ledger", None),
        ("GET", f"/v1/budgets/{budget_id}/check", None),
        ("GET", f"/v1/sessions/{session['id']}/budgets", None),
        ("GET", f"/v1/sessions/{session['id']}/budget-check", None),
        ("POST", f"/v1/sessions/{session['id']}/resume", {}),
    ):
        response = await other_org.client.request(method, path, json=body)
        assert_error(response, 404, "not_found")
    assert (await other_org.client.get("/v1/budgets")).json() == []
    assert await rows(api) == before
    assert (await get(api, budget_id))["status"] == "paused"
