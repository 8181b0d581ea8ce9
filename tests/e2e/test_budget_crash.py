"""``kill -9`` of a real ``everloop serve`` around a charged model call (issue 16).

A session with a ``tokens`` budget of its own and a ``credits`` budget of its organization runs
one turn of model -> ``add`` -> model. The server is killed while a model call streams (its
``reason.started`` written, its ``llm.generation`` not), or just after the first generation is
recorded while the turn goes on. What the database holds at the kill is read directly, with the
process dead: every recorded generation is charged to each budget, and nothing else is. After
a restart on the same data dir (or database) the turn completes and each generation is charged
exactly once: per budget, the ``llm_tokens`` ledger entries number the ``llm.generation``
events, their refs are distinct, their amounts are the generations' tokens, and the balance is
the limit minus the ledger's sum. The checks are on the event log and the ledger, never on
timings.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from everloop.config import Settings
from everloop.store import migrate
from tests.e2e.conftest import POSTGRES_URL, Api, Server
from tests.e2e.test_crash import ONE_TOOL_TURN, assert_log_sound, open_stream, read_until

pytestmark = pytest.mark.slow

DEADLINE = 60.0
SLOW_ADD = {
    "response": {"type": "fixed", "text": "The sum is 5."},
    "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
    # Long enough that the model call the test waits for is still streaming when it kills.
    "latency_ms": 2000,
}
SESSION_LIMIT = 1_000_000.0  # tokens
ORG_LIMIT = 1_000.0  # credits (1,000 tokens each)


def of_type(log: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in log if e["type"] == event_type]


def generation_tokens(event: dict[str, Any]) -> int:
    usage = event["data"]["metadata"]["usage"]
    return int(
        usage["input_tokens"]
        + usage["output_tokens"]
        + usage["cache_read_tokens"]
        + usage["cache_creation_tokens"]
    )


def budgeted_session(api: Api, model_id: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """A session allowed ``add``, with a budget of its own and one of its organization."""
    session_id = api.create_session(model_id, capabilities=[{"ref": "test_math"}])
    org_id = api.ok(api.http.get(f"sessions/{session_id}"))["organization_id"]
    bodies = {
        "session": {
            "subject_type": "session",
            "subject_id": session_id,
            "currency": "tokens",
            "limit": SESSION_LIMIT,
        },
        "org": {
            "subject_type": "org",
            "subject_id": org_id,
            "currency": "credits",
            "limit": ORG_LIMIT,
        },
    }
    budgets = {
        name: api.ok(api.http.post("budgets", json=body), 201) for name, body in bodies.items()
    }
    applicable = api.ok(api.http.get(f"sessions/{session_id}/budgets"))
    assert {b["id"] for b in applicable} == {b["id"] for b in budgets.values()}
    return session_id, budgets


def database_at_kill(server: Server, session_id: str, budget_ids: list[str]) -> dict[str, Any]:
    """What the database of the dead server holds: the session's event types and, per budget,
    its ``llm_tokens`` ledger entries as ``{entry id: ref}``. Read directly: the API is down
    with the process."""
    url = (
        server.env.get("EVERLOOP_DATABASE_URL")
        or Settings(data_dir=server.data_dir).app_database_url
    )
    # With EVERLOOP_TEST_POSTGRES_URL set, the server ran on PostgreSQL: read that database.
    assert url.startswith("postgresql") == bool(POSTGRES_URL), url
    engine = create_engine(migrate.sync_url(url))
    try:
        with engine.connect() as conn:
            types = conn.execute(
                text("SELECT type FROM events WHERE session_id = :session"),
                {"session": session_id},
            ).scalars()
            ledger = {
                budget_id: {
                    str(entry_id): str(ref_id)
                    for entry_id, ref_id in conn.execute(
                        text(
                            "SELECT id, ref_id FROM budget_ledger"
                            " WHERE budget_id = :budget AND meter_source = 'llm_tokens'"
                        ),
                        {"budget": budget_id},
                    )
                }
                for budget_id in budget_ids
            }
            return {"types": Counter(types), "ledger": ledger}
    finally:
        engine.dispose()


def assert_charged_once(
    api: Api,
    session_id: str,
    budgets: dict[str, dict[str, Any]],
    charged_at_kill: dict[str, dict[str, str]],
) -> None:
    """Each budget holds one ``llm_tokens`` entry per ``llm.generation`` in the session's log,
    of that generation's amount, the entries made before the kill among them, and its balance
    is its limit minus its ledger's sum."""
    log = api.events(session_id)
    generations = of_type(log, "llm.generation")
    (started,) = of_type(log, "turn.started")
    turn_id = started["data"]["turn_id"]
    tokens = sum(generation_tokens(e) for e in generations)
    assert tokens > 0
    for budget in budgets.values():
        ledger = api.ok(api.http.get(f"budgets/{budget['id']}/ledger", params={"limit": 500}))
        charges = [e for e in ledger if e["meter_source"] == "llm_tokens"]
        assert len(charges) == len(generations), (budget["subject_type"], ledger)
        refs = [e["ref_id"] for e in charges]
        assert len(set(refs)) == len(refs), refs
        assert all(ref.startswith(f"{turn_id}:") for ref in refs), refs
        assert {e["session_id"] for e in charges} == {session_id}
        kept = {e["id"]: e["ref_id"] for e in charges if e["id"] in charged_at_kill[budget["id"]]}
        assert kept == charged_at_kill[budget["id"]], "a charge made before the kill changed"
        amounts = sum(e["amount"] for e in charges)
        per_token = 1.0 if budget["currency"] == "tokens" else 1 / 1000
        assert amounts == pytest.approx(tokens * per_token)
        now = api.ok(api.http.get(f"budgets/{budget['id']}"))
        assert now["limit"] == budget["limit"]
        assert now["balance"] == pytest.approx(now["limit"] - sum(e["amount"] for e in ledger))
        assert now["status"] == "active"


def finish_after_restart(
    server: Server, api: Api, session_id: str, before: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Restart on the same data, wait for the turn to end; the log is whole and exactly once."""
    api.close()
    server.restart()
    log = api.wait_type(session_id, "session.idled", timeout=DEADLINE)
    assert_log_sound(log)
    # Nothing written before the kill changed or was written again.
    assert log[: len(before)] == before
    shape = Counter(e["type"] for e in log)
    assert {kind: shape[kind] for kind in ONE_TOOL_TURN} == ONE_TOOL_TURN
    assert not of_type(log, "turn.failed") and not of_type(log, "turn.cancelled")
    assert api.ok(api.http.get(f"sessions/{session_id}"))["output_preview"] == "The sum is 5."
    return log


@pytest.mark.parametrize(
    "call", [pytest.param(1, id="first-model-call"), pytest.param(2, id="second-model-call")]
)
def test_kill9_while_a_model_call_streams_charges_each_generation_once(
    server: Server, api: Api, call: int
) -> None:
    model_id = api.llmsim_model(SLOW_ADD)
    session_id, budgets = budgeted_session(api, model_id)

    seen: list[dict[str, Any]] = []
    with open_stream(server, session_id) as frames:
        read_until(frames, "session.started", seen)
        api.post_message(session_id, "please add 2 and 3")
        for _ in range(call):
            read_until(frames, "reason.started", seen)
        before = api.events(session_id)
        server.kill9()

    at_kill = database_at_kill(server, session_id, [b["id"] for b in budgets.values()])
    types = at_kill["types"]
    # The kill came while call ``call`` was in flight: opened, not answered.
    assert types["reason.started"] == call, types
    assert types["llm.generation"] == call - 1, "the kill came too late"
    # What was recorded was charged in the same commit, to every budget; nothing more.
    for refs in at_kill["ledger"].values():
        assert len(refs) == call - 1, at_kill

    finish_after_restart(server, api, session_id, before)
    assert_charged_once(api, session_id, budgets, at_kill["ledger"])


def test_kill9_right_after_a_generation_is_recorded_charges_nothing_more(
    server: Server, api: Api
) -> None:
    model_id = api.llmsim_model(SLOW_ADD)
    session_id, budgets = budgeted_session(api, model_id)

    seen: list[dict[str, Any]] = []
    with open_stream(server, session_id) as frames:
        read_until(frames, "session.started", seen)
        api.post_message(session_id, "please add 2 and 3")
        read_until(frames, "llm.generation", seen)
        before = api.events(session_id)
        server.kill9()

    at_kill = database_at_kill(server, session_id, [b["id"] for b in budgets.values()])
    types = at_kill["types"]
    # The first generation is recorded (and charged); the turn was still going.
    assert types["llm.generation"] == 1, types
    assert types["turn.completed"] == 0, "the kill came too late"
    # It is charged to both budgets, under one ref.
    refs = [sorted(entries.values()) for entries in at_kill["ledger"].values()]
    assert len(refs[0]) == 1 and refs[0] == refs[1], at_kill

    finish_after_restart(server, api, session_id, before)
    assert_charged_once(api, session_id, budgets, at_kill["ledger"])
