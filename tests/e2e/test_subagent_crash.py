"""``kill -9`` of a real ``everloop serve`` while a parent turn waits for a subagent (issue 14).

A parent session spawns one child with ``spawn_subagent`` and waits for it durably. The server
is killed while the child's model call runs (the parent waiting in its delegated tool call), or
while the parent's second model call runs (the child settled, the spawn recorded). After a
restart on the same data dir and port both turns finish, each exactly once: one child, one
task, one ``tool.completed`` for the spawn, the child's answer in the parent's; no event
written twice, and nothing written before the kill changed. The checks are on the event logs
and the database rows, never on timings.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from everloop.config import Settings
from everloop.store import migrate
from tests.e2e.conftest import Api, Server, wait_for
from tests.e2e.test_crash import assert_log_sound

pytestmark = pytest.mark.slow

DEADLINE = 60.0
CHILD_TASK = "research alpha"
CHILD_ANSWER = f"Echo: {CHILD_TASK}"
SCRIPT = {
    # The parent's message matches the rule; the child's task does not, so the child answers.
    "response": {"type": "echo"},
    "tool_calls": [
        {
            "when": "delegate",
            "name": "spawn_subagent",
            "arguments": {"name": "researcher", "task": CHILD_TASK},
        }
    ],
    # Every model call (the parent's and the child's: the child inherits the parent's model)
    # lasts long enough that the one the test waits for is still running when it kills.
    "latency_ms": 2000,
}

# The number of deltas depends on the answer's length, not on what happened to the process.
UNCOUNTED = {"output.message.delta"}

# The parent: model -> spawn_subagent (waits for the child) -> model.
PARENT_TURN = {
    "session.started": 1,
    "input.message": 1,
    "session.activated": 1,
    "turn.started": 1,
    "reason.started": 2,
    "output.message.started": 2,
    "output.message.completed": 2,
    "llm.generation": 2,
    "reason.completed": 2,
    "act.started": 1,
    "tool.started": 1,
    "task.created": 1,
    "subagent.spawned": 1,
    "task.updated": 1,
    "subagent.completed": 1,
    "tool.completed": 1,
    "act.completed": 1,
    "turn.completed": 1,
    "session.idled": 1,
}

# The child: one model call that answers.
CHILD_TURN = {
    "session.started": 1,
    "input.message": 1,
    "session.activated": 1,
    "turn.started": 1,
    "reason.started": 1,
    "output.message.started": 1,
    "output.message.completed": 1,
    "llm.generation": 1,
    "reason.completed": 1,
    "turn.completed": 1,
    "session.idled": 1,
}


def shape(log: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(e["type"] for e in log if e["type"] not in UNCOUNTED))


def of_type(log: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in log if e["type"] == event_type]


def database_counts(server: Server, parent_id: str, child_id: str) -> dict[str, int]:
    """What the database holds for the tree, read directly: the API's session list may hide
    children, and there is no task route to count with."""
    url = (
        server.env.get("EVERLOOP_DATABASE_URL")
        or Settings(data_dir=server.data_dir).app_database_url
    )
    engine = create_engine(migrate.sync_url(url))
    queries = {
        "children": "SELECT count(*) FROM sessions WHERE parent_session_id = :parent",
        "tasks": "SELECT count(*) FROM session_tasks WHERE session_id = :parent",
        "child_turns": "SELECT count(*) FROM turns WHERE session_id = :child",
        "parent_turns": "SELECT count(*) FROM turns WHERE session_id = :parent",
    }
    try:
        with engine.connect() as conn:
            return {
                name: int(
                    conn.execute(text(sql), {"parent": parent_id, "child": child_id}).one()[0]
                )
                for name, sql in queries.items()
            }
    finally:
        engine.dispose()


def kill_point_reached(
    api: Api, parent_id: str, kill_during: str
) -> tuple[str, list[dict[str, Any]]] | None:
    """The child's id and the parent's log once the run is where the test kills, else None."""
    parent_log = api.events(parent_id)
    spawned = of_type(parent_log, "subagent.spawned")
    if not spawned:
        return None
    child_id = str(spawned[0]["data"]["session_id"])
    if kill_during == "child-model-call":
        reached = bool(of_type(api.events(child_id), "reason.started"))
    else:  # parent-second-model-call
        reached = len(of_type(parent_log, "reason.started")) == 2
    return (child_id, parent_log) if reached else None


@pytest.mark.parametrize(
    "kill_during",
    [
        pytest.param("child-model-call", id="while-the-parent-waits-for-the-child"),
        pytest.param("parent-second-model-call", id="after-the-child-settled"),
    ],
)
def test_kill9_with_a_subagent_resumes_both_turns_exactly_once(
    server: Server, api: Api, kill_during: str
) -> None:
    model_id = api.llmsim_model(SCRIPT)
    parent_id = api.create_session(model_id, capabilities=[{"ref": "subagents"}])
    api.post_message(parent_id, "please delegate this")

    child_id, _ = wait_for(
        lambda: kill_point_reached(api, parent_id, kill_during),
        timeout=DEADLINE,
        what=f"the kill point ({kill_during})",
    )
    parent_before = api.events(parent_id)
    child_before = api.events(child_id)
    server.kill9()

    assert not of_type(parent_before, "turn.completed"), "the kill came too late"
    if kill_during == "child-model-call":
        # The parent waits for a child whose model call is running.
        assert not of_type(child_before, "reason.completed"), "the kill came too late"
        assert not of_type(parent_before, "subagent.completed")
    else:
        # The child settled and the parent recorded its result before the kill.
        assert of_type(child_before, "turn.completed")
        assert of_type(parent_before, "subagent.completed")
        assert len(of_type(parent_before, "tool.completed")) == 1

    api.close()
    server.restart()
    parent_log = api.wait_type(parent_id, "session.idled", timeout=DEADLINE)
    child_log = api.wait_type(child_id, "session.idled", timeout=DEADLINE)

    for log, before in ((parent_log, parent_before), (child_log, child_before)):
        assert_log_sound(log)
        # Nothing written before the kill changed or was written again.
        assert log[: len(before)] == before
        assert not of_type(log, "turn.failed") and not of_type(log, "turn.cancelled")
    assert shape(parent_log) == PARENT_TURN
    assert shape(child_log) == CHILD_TURN

    (spawned,) = of_type(parent_log, "subagent.spawned")
    assert spawned["data"]["session_id"] == child_id
    (ended,) = of_type(parent_log, "subagent.completed")
    assert ended["data"]["session_id"] == child_id
    assert ended["data"]["result_preview"] == CHILD_ANSWER
    (done,) = of_type(parent_log, "tool.completed")
    assert done["data"]["tool_name"] == "spawn_subagent"
    assert done["data"]["status"] == "success"
    (finished,) = of_type(parent_log, "turn.completed")
    assert CHILD_ANSWER in finished["data"]["final_answer_preview"]
    (child_finished,) = of_type(child_log, "turn.completed")
    assert child_finished["data"]["final_answer_preview"] == CHILD_ANSWER

    parent = api.ok(api.http.get(f"sessions/{parent_id}"))
    child = api.ok(api.http.get(f"sessions/{child_id}"))
    assert parent["status"] == "idle" and child["status"] == "idle"
    assert child["parent_session_id"] == parent_id
    assert child["subagent_status"] == "completed"
    assert child["output_preview"] == CHILD_ANSWER
    # The child's usage reached the parent's tree once, however often the process died.
    assert parent["tree_usage"] == {
        key: parent["usage"][key] + child["usage"][key] for key in parent["usage"]
    }
    assert database_counts(server, parent_id, child_id) == {
        "children": 1,
        "tasks": 1,
        "child_turns": 1,
        "parent_turns": 1,
    }
