"""Agent health checks on a real ``everloop serve`` (issue 21): the runs as the published
``everruns-sdk`` parses them, and a run that survives ``kill -9``.

The crash: three cases (one passing, one failing its rubric by the scripted judge's score, one
running out of its turn bound in a tool loop), at most two at a time, against a model slow
enough that both first cases are mid-call when the server is killed (the third still pending).
What the database holds at the kill is read directly; after a restart on the same data the run
completes with the summary the three outcomes give, each case's session exists exactly once
(the two from before the kill kept, one more), each session has exactly one turn, and each
model call the case needed was recorded once. No timing is asserted: the waits poll conditions
inside deadlines.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from everruns_sdk import Everruns
from everruns_sdk.models import HealthCheckCaseResult, HealthCheckRun, HealthCheckSummary
from sqlalchemy import create_engine, text

from everloop.config import Settings
from everloop.store import migrate
from tests.e2e.conftest import POSTGRES_URL, Api, Server, wait_for

pytestmark = pytest.mark.slow

DEADLINE = 90.0
JUDGE = {
    "response": {"type": "fixed", "text": '{"score": 0.9, "pass": true, "reason": "Good."}'},
    "tool_calls": [],
}


def cases(count: int) -> list[dict[str, Any]]:
    return [
        {"name": f"case-{i}", "user_message": f"Question {i}?", "rubric": "Answers."}
        for i in range(count)
    ]


# The judge gives every answer 0.9: "strict" asks for more (its threshold), so it fails its
# rubric; "loop" makes the model call add again and again until the case's turn bound ends it.
MIXED_CASES = [
    {"name": "capital", "user_message": "Capital of France?", "rubric": "Names Paris."},
    {
        "name": "loop",
        "user_message": "Please loop on add until done.",
        "rubric": "Gives the sum.",
        "max_turns": 2,
    },
    {
        "name": "strict",
        "user_message": "Capital of France, with a source?",
        "rubric": "Names Paris and cites a source.",
        "pass_threshold": 0.95,
    },
]
LOOP_ON_ADD = [{"when": "\\bloop\\b", "name": "add", "arguments": {"a": 1, "b": 2}, "repeat": 50}]


def checked_agent(
    api: Api,
    agent_script: dict[str, Any],
    count: int,
    case_list: list[dict[str, Any]] | None = None,
) -> str:
    model = api.llmsim_model(agent_script)
    judge = api.llmsim_model(JUDGE)
    config = {"cases": case_list or cases(count), "judge_model_id": judge}
    body = {
        "name": "checked",
        "system_prompt": "You answer.",
        "default_model_id": model,
        "capabilities": [{"ref": "test_math"}, {"ref": "health_check", "config": config}],
    }
    return str(api.ok(api.http.post("agents", json=body), 201)["id"])


def finished(api: Api, agent_id: str, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run: dict[str, Any] = api.ok(api.http.get(f"agents/{agent_id}/health-checks/{run_id}"))
        return run if run["status"] in ("completed", "failed") else None

    result: dict[str, Any] = wait_for(done, timeout=DEADLINE, what="the run to finish")
    return result


def test_the_sdk_parses_runs(server: Server, api: Api) -> None:
    agent_id = checked_agent(api, {"response": {"type": "fixed", "text": "Yes."}}, 2)

    async def trigger() -> HealthCheckRun:
        async with Everruns(api_key=server.token, base_url=server.api_url) as client:
            return await client.agents.trigger_health_check(agent_id)

    started = asyncio.run(trigger())
    assert isinstance(started, HealthCheckRun) and started.status == "pending"
    finished(api, agent_id, started.id)

    async def read() -> tuple[HealthCheckRun, list[HealthCheckRun]]:
        async with Everruns(api_key=server.token, base_url=server.api_url) as client:
            one = await client.agents.get_health_check(agent_id, started.id)
            return one, await client.agents.list_health_checks(agent_id)

    run, listed = asyncio.run(read())
    assert run.status == "completed" and run.completed_at is not None
    assert run.config_hash == started.config_hash and run.agent_id == agent_id
    assert [r.id for r in listed] == [run.id]
    assert run.results is not None and len(run.results) == 2
    assert all(isinstance(r, HealthCheckCaseResult) and r.passed for r in run.results)
    assert all(r.score == 0.9 and r.session_id for r in run.results)
    assert isinstance(run.summary, HealthCheckSummary)
    assert (run.summary.total, run.summary.passed, run.summary.pass_rate) == (2, 2, 1.0)
    assert run.summary.avg_score == pytest.approx(0.9)


def database_at_kill(server: Server, run_id: str) -> dict[str, Any]:
    """The run's status and its cases' (status, session id), read from the dead server's
    database; and how many sessions exist."""
    url = (
        server.env.get("EVERLOOP_DATABASE_URL")
        or Settings(data_dir=server.data_dir).app_database_url
    )
    assert url.startswith("postgresql") == bool(POSTGRES_URL), url
    engine = create_engine(migrate.sync_url(url))
    try:
        with engine.connect() as conn:
            status = conn.execute(
                text("SELECT status FROM health_check_runs WHERE id = :run"), {"run": run_id}
            ).scalar_one()
            found = conn.execute(
                text(
                    "SELECT status, session_id FROM health_check_cases WHERE run_id = :run"
                    " ORDER BY case_index"
                ),
                {"run": run_id},
            ).all()
            sessions = conn.execute(text("SELECT count(*) FROM sessions")).scalar_one()
            return {"status": status, "cases": [tuple(row) for row in found], "sessions": sessions}
    finally:
        engine.dispose()


def test_kill9_mid_run_runs_each_case_once(start_server: Any) -> None:
    server: Server = start_server(EVERLOOP_HEALTH_CHECK_MAX_PARALLEL="2")
    api = Api(server)
    try:
        # Slow enough that the first two cases are still mid-call at the kill, however long
        # seeing both in flight takes on a loaded machine (1.5 s was not, on CI's PostgreSQL).
        script = {
            "response": {"type": "fixed", "text": "An answer."},
            "latency_ms": 6000,
            "tool_calls": LOOP_ON_ADD,
        }
        agent_id = checked_agent(api, script, 3, MIXED_CASES)
        run = api.ok(api.http.post(f"agents/{agent_id}/health-checks", json={}))

        def two_in_flight() -> list[str] | None:
            listed = api.ok(api.http.get("sessions"))["data"]
            calling = [
                s["id"]
                for s in listed
                if any(e["type"] == "reason.started" for e in api.events(s["id"]))
            ]
            return calling if len(calling) == 2 else None

        in_flight = wait_for(two_in_flight, timeout=DEADLINE, what="two cases mid-call")
        api.close()
        server.kill9()

        at_kill = database_at_kill(server, run["id"])
        assert at_kill["status"] == "running", at_kill
        statuses = [status for status, _session in at_kill["cases"]]
        # Two claimed with their sessions, the third not started: nothing else exists.
        assert sorted(statuses) == ["pending", "running", "running"], at_kill
        started = {session for status, session in at_kill["cases"] if status == "running"}
        assert started == set(in_flight)
        assert at_kill["sessions"] == 2

        server.restart()
        done = finished(api, agent_id, run["id"])
        assert done["status"] == "completed", done
        results = {r["name"]: r for r in done["results"]}
        assert list(results) == ["capital", "loop", "strict"]
        sessions = [r["session_id"] for r in done["results"]]
        assert len(set(sessions)) == 3 and started <= set(sessions)
        assert api.ok(api.http.get("sessions"))["total"] == 3

        capital, loop, strict = results["capital"], results["loop"], results["strict"]
        assert (capital["passed"], capital["score"], capital["error"]) == (True, 0.9, None)
        assert (strict["passed"], strict["score"], strict["error"]) == (False, 0.9, None)
        assert "below 0.95" in strict["judge_reason"]
        assert (loop["passed"], loop["score"]) == (False, 0.0)
        assert loop["error"].startswith("timed out") and "max_iterations (2)" in loop["error"]
        assert loop["judge_reason"].startswith("not judged")

        # Each case ran once: one session, one input, one turn that ended once, and each model
        # call it needed recorded once (a call cut by the kill left no generation).
        terminal = {"capital": "turn.completed", "strict": "turn.completed", "loop": "turn.failed"}
        calls = {"capital": 1, "strict": 1, "loop": 2}
        for name, result in results.items():
            shape = Counter(e["type"] for e in api.events(result["session_id"]))
            assert shape["session.started"] == 1 and shape["input.message"] == 1, (name, shape)
            ended = sum(shape[t] for t in ("turn.completed", "turn.failed", "turn.cancelled"))
            assert ended == 1 and shape[terminal[name]] == 1, (name, shape)
            assert shape["llm.generation"] == calls[name] == result["turns"], (name, shape)
            assert shape["tool.completed"] == (2 if name == "loop" else 0), (name, shape)

        summary = done["summary"]
        assert {k: summary[k] for k in ("total", "passed", "failed", "errored")} == {
            "total": 3,
            "passed": 1,
            "failed": 1,
            "errored": 1,
        }
        assert summary["pass_rate"] == pytest.approx(1 / 3, abs=1e-6)
        assert summary["avg_score"] == pytest.approx((0.9 + 0.9 + 0.0) / 3, abs=1e-6)
        assert summary["avg_turns"] == pytest.approx(4 / 3, abs=1e-6)
        assert summary["total_input_tokens"] == sum(r["input_tokens"] for r in done["results"])
        assert summary["total_output_tokens"] == sum(r["output_tokens"] for r in done["results"])
    finally:
        api.close()
