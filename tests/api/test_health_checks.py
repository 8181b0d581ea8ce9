"""Agent health checks through the API (issue 21): a run of three cases against llmsim, one
passing, one failing its rubric with a scripted judge, one timing out (it reaches its
``max_turns`` in a tool loop); the summary, the case sessions, ``latest`` and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from everloop.config import Settings
from everloop.store.tables import health_check_runs, sessions
from tests.api.conftest import assert_error, create_agent
from tests.conftest import Api
from tests.engine.conftest import scripted_model

AGENT_SCRIPT = {
    "response": {"type": "fixed", "text": "The capital of France is Paris."},
    # "loop" makes the model ask for add again and again: the turn reaches its max_turns.
    "tool_calls": [
        {"when": "\\bloop\\b", "name": "add", "arguments": {"a": 1, "b": 2}, "repeat": 50}
    ],
}
# A judge that answers in a code fence with prose around it: the verdict is still found.
JUDGE_SCRIPT = {
    "response": {
        "type": "fixed",
        "text": 'Verdict:\n```json\n{"score": 0.8, "pass": true, "reason": "Names Paris."}\n```',
    },
    "tool_calls": [],
}
CASES = [
    {
        "name": "capital",
        "user_message": "What is the capital of France?",
        "rubric": "Names Paris as the capital.",
    },
    {
        "name": "strict",
        "user_message": "What is the capital of France, with a source?",
        "rubric": "Names Paris and cites a source.",
        "pass_threshold": 0.9,
    },
    {
        "name": "loop",
        "user_message": "Please loop on add until done.",
        "rubric": "Gives the sum.",
        "max_turns": 2,
    },
]


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The shared settings, with the limits a test asks for (``indirect``)."""
    return settings.model_copy(update=getattr(request, "param", {}))


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


def checked_capabilities(judge_model_id: str | None, cases: list[dict[str, Any]] = CASES) -> Any:
    config: dict[str, Any] = {"cases": cases}
    if judge_model_id is not None:
        config["judge_model_id"] = judge_model_id
    return [{"ref": "test_math"}, {"ref": "health_check", "config": config}]


async def checked_agent(api: Api, name: str = "checked") -> tuple[dict[str, Any], str]:
    agent_model = await scripted_model(api, AGENT_SCRIPT)
    judge = await scripted_model(api, JUDGE_SCRIPT)
    agent = await create_agent(
        api, name, default_model_id=agent_model, capabilities=checked_capabilities(judge)
    )
    return agent, judge


async def finished_run(api: Api, agent_id: str, run_id: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        await api.services.health_check_runner.settled(run_id)
    got = await api.client.get(f"/v1/agents/{agent_id}/health-checks/{run_id}")
    assert got.status_code == 200, got.text
    return dict(got.json())


async def test_a_run_of_three_cases_scores_and_summarizes(engine: Api) -> None:
    api = engine
    agent, judge = await checked_agent(api)
    started = await api.client.post(f"/v1/agents/{agent['id']}/health-checks", json={})
    assert started.status_code == 200, started.text
    run = started.json()
    assert run["id"].startswith("healthcheck_")
    assert run["status"] == "pending"
    assert run["agent_id"] == agent["id"] and run["model_id"] == judge
    assert run["config_hash"].startswith("sha256:")

    run = await finished_run(api, agent["id"], run["id"])
    assert run["status"] == "completed", run
    assert run["completed_at"] is not None and run["error_message"] is None
    capital, strict, loop = run["results"]
    assert [r["name"] for r in run["results"]] == ["capital", "strict", "loop"]

    assert capital["passed"] is True and capital["score"] == 0.8
    assert capital["judge_reason"] == "Names Paris."
    assert capital["turns"] == 1 and capital["error"] is None
    assert "completed in 1 model call" in capital["deterministic_reason"]

    assert strict["passed"] is False and strict["score"] == 0.8 and strict["error"] is None
    assert "below 0.9" in strict["judge_reason"]
    assert "completed" in strict["deterministic_reason"]

    assert loop["passed"] is False and loop["score"] == 0.0
    assert loop["turns"] == 2
    assert loop["error"] is not None and loop["error"].startswith("timed out")
    assert "max_iterations (2)" in loop["error"]
    assert loop["judge_reason"].startswith("not judged")

    # Every case ran as a session of the agent, tagged with the run.
    for result in run["results"]:
        session = (await api.client.get(f"/v1/sessions/{result['session_id']}")).json()
        assert session["agent_id"] == agent["id"]
        assert f"health_check:{run['id']}" in session["tags"]
        usage = session["usage"]
        if result["error"] is None:  # judged: the judge's tokens come on top of the session's
            assert result["input_tokens"] > usage["input_tokens"] > 0
            assert result["output_tokens"] > usage["output_tokens"] > 0
        else:
            assert result["input_tokens"] == usage["input_tokens"] > 0
            assert result["output_tokens"] == usage["output_tokens"] > 0

    summary = run["summary"]
    assert {k: summary[k] for k in ("total", "passed", "failed", "errored")} == {
        "total": 3,
        "passed": 1,
        "failed": 1,
        "errored": 1,
    }
    assert summary["pass_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert summary["avg_score"] == pytest.approx((0.8 + 0.8 + 0.0) / 3, abs=1e-6)
    assert summary["avg_turns"] == pytest.approx(4 / 3, abs=1e-6)
    assert summary["total_input_tokens"] == sum(r["input_tokens"] for r in run["results"])
    assert summary["total_output_tokens"] == sum(r["output_tokens"] for r in run["results"])

    listed = await api.client.get(f"/v1/agents/{agent['id']}/health-checks")
    assert [r["id"] for r in listed.json()] == [run["id"]]
    latest = (await api.client.get(f"/v1/agents/{agent['id']}/health-checks/latest")).json()
    assert latest == {"run": run, "config_changed": False}

    changed = await api.client.patch(
        f"/v1/agents/{agent['id']}", json={"system_prompt": "You help, briefly."}
    )
    assert changed.status_code == 200, changed.text
    latest = (await api.client.get(f"/v1/agents/{agent['id']}/health-checks/latest")).json()
    assert latest["config_changed"] is True and latest["run"]["id"] == run["id"]


async def test_an_unparseable_judge_fails_the_case_with_the_reason(engine: Api) -> None:
    api = engine
    agent_model = await scripted_model(api, AGENT_SCRIPT)
    judge = await scripted_model(api, {"response": {"type": "fixed", "text": "Looks fine."}})
    cases = [CASES[0]]
    agent = await create_agent(
        api,
        "one-case",
        default_model_id=agent_model,
        capabilities=checked_capabilities(None, cases),
    )
    started = await api.client.post(
        f"/v1/agents/{agent['id']}/health-checks", json={"judge_model_id": judge}
    )
    assert started.status_code == 200, started.text
    run = await finished_run(api, agent["id"], started.json()["id"])
    (result,) = run["results"]
    assert run["model_id"] == judge
    assert result["passed"] is False and result["score"] == 0.0 and result["error"] is None
    assert "not a JSON object" in result["judge_reason"] and "Looks fine." in result["judge_reason"]
    assert run["summary"]["failed"] == 1 and run["summary"]["pass_rate"] == 0.0


async def test_without_a_judge_the_org_default_model_judges(engine: Api) -> None:
    api = engine
    agent_model = await scripted_model(api, AGENT_SCRIPT)
    judge = await scripted_model(api, JUDGE_SCRIPT)
    # Marked the org default (a model's settings are replaced whole: its script kept).
    marked = await api.client.patch(
        f"/v1/models/{judge}", json={"settings": {"llmsim": JUDGE_SCRIPT, "default": True}}
    )
    assert marked.status_code == 200, marked.text
    agent = await create_agent(
        api,
        "default-judged",
        default_model_id=agent_model,
        capabilities=checked_capabilities(None, [CASES[0]]),
    )
    started = await api.client.post(f"/v1/agents/{agent['id']}/health-checks", json={})
    assert started.status_code == 200, started.text
    run = await finished_run(api, agent["id"], started.json()["id"])
    assert run["model_id"] is None  # none named: the org default at the time of judging
    (result,) = run["results"]
    # The verdict is the default model's (JUDGE_SCRIPT), not the agent model's answer.
    assert (result["passed"], result["score"]) == (True, 0.8)
    assert result["judge_reason"] == "Names Paris."


async def run_count(api: Api) -> int:
    async with api.services.db.read() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(health_check_runs))).scalar_one()
        )


async def session_count(api: Api) -> int:
    async with api.services.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(sessions))).scalar_one())


async def test_bad_input_is_refused_and_writes_nothing(api: Api) -> None:
    plain = await create_agent(api, "plain")
    latest = await api.client.get(f"/v1/agents/{plain['id']}/health-checks/latest")
    assert latest.json() == {"run": None, "config_changed": False}

    refused = await api.client.post(f"/v1/agents/{plain['id']}/health-checks", json={})
    assert_error(refused, 422, "health_checks_unavailable", "capabilities")

    bad_case = [{"name": "x", "user_message": "hi"}]  # no rubric
    created = await api.client.post(
        "/v1/agents",
        json={
            "name": "bad",
            "system_prompt": "p",
            "capabilities": checked_capabilities(None, bad_case),
        },
    )
    assert_error(created, 422, field="capabilities.1.config.cases.0")

    agent = await create_agent(api, "checked", capabilities=checked_capabilities(None))
    unknown = "model_" + "0" * 32
    refused = await api.client.post(
        f"/v1/agents/{agent['id']}/health-checks", json={"judge_model_id": unknown}
    )
    assert_error(refused, 422, "unknown_model", "judge_model_id")
    refused = await api.client.post(
        f"/v1/agents/{agent['id']}/health-checks", json={"judge_model_id": "nope"}
    )
    assert_error(refused, 422, field="judge_model_id")
    refused = await api.client.post(f"/v1/agents/{agent['id']}/health-checks", json={"x": 1})
    assert_error(refused, 422)
    missing = await api.client.get(f"/v1/agents/{agent['id']}/health-checks/healthcheck_{'0' * 32}")
    assert_error(missing, 404)
    assert await run_count(api) == 0
    assert await session_count(api) == 0


@pytest.mark.parametrize("settings", [{"health_check_case_timeout_seconds": 1.0}], indirect=True)
async def test_a_case_past_its_timeout_is_cancelled_and_reported(engine: Api) -> None:
    api = engine
    slow = await scripted_model(
        api, {"response": {"type": "fixed", "text": "late"}, "latency_ms": 30_000}
    )
    judge = await scripted_model(api, JUDGE_SCRIPT)
    agent = await create_agent(
        api, "slow", default_model_id=slow, capabilities=checked_capabilities(judge, [CASES[0]])
    )
    started = await api.client.post(f"/v1/agents/{agent['id']}/health-checks", json={})
    assert started.status_code == 200, started.text
    run = await finished_run(api, agent["id"], started.json()["id"])
    (result,) = run["results"]
    assert result["passed"] is False and result["score"] == 0.0
    assert result["error"] is not None and "did not end within 1 s" in result["error"]
    assert result["judge_reason"].startswith("not judged")
    assert run["summary"]["errored"] == 1
    # The case's turn was cancelled, not left running.
    listed = await api.client.get(f"/v1/sessions/{result['session_id']}/events")
    kinds = [e["type"] for e in listed.json()["data"]]
    assert "turn.cancelled" in kinds and "output.message.completed" not in kinds
