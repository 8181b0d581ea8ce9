"""A process that dies during a tool call, replayed in-process, per side-effect class.

The "crash" cancels the task running the turn while a tool call is in flight (held by a real
server on 127.0.0.1, or by the test tool itself): what was committed stays, what was not rolls
back, as when the process dies. "Recovery" runs the turn again with the same runner, which kept
nothing of the turn in memory (``TurnEnv.forget``), so the re-run sees only the database: the
step records (``turn_effects``) and start markers. The engine is not started, so nothing else
runs the turn. The tests count what reached the outside world and what was recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text
from tests.conftest import Api
from tests.engine.conftest import events, new_session, send, wait_for
from tests.local_web import LocalWeb
from tests.mcp_test_server import McpTestServer

from everloop.capabilities.base import Capability, SideEffect, ToolContext
from everloop.config import Settings
from everloop.domain.messages import JsonObject, JsonValue
from everloop.services import session_storage

pytestmark = pytest.mark.timeout(90)

REACH_SECONDS = 30.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The servers are on loopback: allowed as an operator would, and named per session."""
    return settings.model_copy(update={"egress_allowed_private_networks": "127.0.0.0/8"})


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer(slow_seconds=REACH_SECONDS)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    with LocalWeb() as server:
        yield server


def calling(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A model that makes ``calls`` in one act phase, then echoes."""
    return {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "go", "name": n, "arguments": a} for n, a in calls],
    }


async def recorded_turn(api: Api, script: dict[str, Any], **session: Any) -> tuple[str, str]:
    """A session with one recorded turn that nothing runs yet (the engine is not started)."""
    session_id = await new_session(api, script, **session)
    posted = await send(api, session_id, "go")
    return session_id, str(posted["turn_id"])


async def crash_when(api: Api, session_id: str, turn_id: str, reached: threading.Event) -> None:
    """Run the turn until ``reached`` is set (its tool call is in flight), then kill it there."""
    turn = asyncio.create_task(api.services.runner.run_turn(session_id, turn_id))
    probe = asyncio.create_task(asyncio.to_thread(reached.wait, REACH_SECONDS))
    await asyncio.wait({turn, probe}, return_when=asyncio.FIRST_COMPLETED)
    assert not turn.done(), f"the turn ended before the call was in flight: {turn.result()}"
    assert await probe, "the tool call never arrived"
    turn.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await turn


async def recover(api: Api, session_id: str, turn_id: str) -> list[dict[str, Any]]:
    """Run the turn again, as the restarted process does; the session's log afterwards."""
    async with asyncio.timeout(REACH_SECONDS):
        assert await api.services.runner.run_turn(session_id, turn_id) == "completed"
    return await events(api, session_id)


async def step_keys(api: Api, turn_id: str) -> list[str]:
    async with api.services.db.read() as conn:
        rows = await conn.execute(
            text("SELECT step_key FROM turn_effects WHERE turn_id = :turn ORDER BY step_key"),
            {"turn": turn_id},
        )
        return [str(row[0]) for row in rows]


def of_type(found: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e["data"] for e in found if e["type"] == event_type]


def mcp_session(server: McpTestServer, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "script": calling((f"mcp_remote__{tool}", arguments)),
        "mcpServers": {"remote": {"url": server.url, "headers": server.headers}},
        "network_access": {"allowed": [f"http://127.0.0.1:{server.port}/"]},
    }


async def test_a_call_not_safe_to_repeat_is_settled_in_doubt(
    api: Api, mcp_server: McpTestServer
) -> None:
    session = mcp_session(mcp_server, "slow_write", {"text": "x"})
    session_id, turn_id = await recorded_turn(api, **session)
    await crash_when(api, session_id, turn_id, mcp_server.entered)

    found = await recover(api, session_id, turn_id)
    assert mcp_server.calls["slow_write"] == 1  # never repeated
    (completed,) = of_type(found, "tool.completed")
    assert completed["success"] is False and completed["status"] == "error"
    assert completed["error_kind"] == "in_doubt"
    assert "in doubt" in completed["error"] and "not run again" in completed["error"]
    (repaired,) = of_type(found, "transcript.repaired")
    assert repaired == {
        "tool_call_id": completed["tool_call_id"],
        "tool_name": "mcp_remote__slow_write",
        "action": "synthesize",
    }
    kinds = [e["type"] for e in found]
    assert kinds.index("transcript.repaired") == kinds.index("tool.completed") - 1
    # The model was told: its next request carries the in-doubt result.
    generations = of_type(found, "llm.generation")
    assert "in doubt" in json.dumps(generations[-1]["messages"])


async def test_an_idempotent_mcp_call_runs_again_and_is_recorded_once(
    api: Api, mcp_server: McpTestServer
) -> None:
    session = mcp_session(mcp_server, "slow_read", {"key": "k"})
    session_id, turn_id = await recorded_turn(api, **session)
    await crash_when(api, session_id, turn_id, mcp_server.entered)
    mcp_server.release.set()

    found = await recover(api, session_id, turn_id)
    assert mcp_server.calls["slow_read"] == 2
    (completed,) = of_type(found, "tool.completed")
    assert completed["success"] is True and completed["error_kind"] is None, completed
    assert of_type(found, "transcript.repaired") == []
    assert (await step_keys(api, turn_id)).count(f"tool:{completed['tool_call_id']}") == 1


async def test_an_interrupted_fetch_runs_again_and_is_recorded_once(
    api: Api, web: LocalWeb
) -> None:
    session_id, turn_id = await recorded_turn(
        api,
        calling(("web_fetch", {"url": f"{web.url}/held"})),
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": [f"{web.url}/"]},
    )
    await crash_when(api, session_id, turn_id, web.entered)
    web.release.set()

    found = await recover(api, session_id, turn_id)
    assert web.requests == ["/held", "/held"]
    (completed,) = of_type(found, "tool.completed")
    assert completed["success"] is True, completed
    assert json.loads(completed["result"][0]["text"])["content"] == "held words"
    assert of_type(found, "transcript.repaired") == []
    # A GET is safe to repeat: no start marker was needed.
    assert await step_keys(api, turn_id) != []
    assert not [k for k in await step_keys(api, turn_id) if k.startswith("tool-start:")]


@dataclass
class CountingTool:
    """A test tool of any side-effect class that counts its executions. A transactional one
    also increments ``count`` in the session's key-value store (its effect, committed with its
    record). With ``hold_first`` its first execution waits until the test kills the turn."""

    name: str
    side_effect: SideEffect
    hold_first: bool = False
    description: str = "Counts its calls."
    parameters: JsonObject = field(default_factory=lambda: {"type": "object"})
    executions: int = 0
    entered: threading.Event = field(default_factory=threading.Event)

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        self.executions += 1
        if context.connection is not None:
            found = await session_storage.storage.get_value(
                context.connection, context.session_id, "count"
            )
            count = int(found.value) + 1 if found else 1
            await session_storage.set_value(
                context.connection, context.session_id, "count", str(count)
            )
        if self.hold_first and self.executions == 1:
            self.entered.set()
            await asyncio.Event().wait()  # until the turn is killed
        return {"executions": self.executions}


def register(api: Api, *tools: CountingTool) -> None:
    api.services.capabilities.register(
        Capability(id="counting", name="Counting", description="test tools", tools=tools)
    )


async def stored_count(api: Api, session_id: str) -> str | None:
    async with api.services.db.read() as conn:
        found = await session_storage.storage.get_value(conn, session_id, "count")
    return None if found is None else found.value


async def test_a_database_only_call_interrupted_mid_transaction_takes_effect_once(
    api: Api,
) -> None:
    tool = CountingTool("count_in_db", SideEffect.TRANSACTIONAL, hold_first=True)
    register(api, tool)
    session_id, turn_id = await recorded_turn(
        api, calling(("count_in_db", {})), capabilities=[{"ref": "counting"}]
    )
    await crash_when(api, session_id, turn_id, tool.entered)
    assert await stored_count(api, session_id) is None  # rolled back with the step

    found = await recover(api, session_id, turn_id)
    assert tool.executions == 2  # the first one's writes never committed
    assert await stored_count(api, session_id) == "1"
    (completed,) = of_type(found, "tool.completed")
    assert completed["success"] is True, completed


CLIENT_TOOL = {
    "type": "client_side",
    "name": "ask_client",
    "description": "Answered by the API caller.",
    "parameters": {"type": "object"},
}


@pytest.mark.parametrize(
    "side_effect",
    [SideEffect.TRANSACTIONAL, SideEffect.PURE, SideEffect.IDEMPOTENT, SideEffect.AT_MOST_ONCE],
)
async def test_a_recorded_call_never_runs_again(api: Api, side_effect: SideEffect) -> None:
    """The turn runs a server tool, records it, then parks on a client tool; the process dies
    while it waits. After recovery the server tool's record is its result: whatever its class,
    it is neither run nor recorded a second time."""
    tool = CountingTool("count", side_effect)
    register(api, tool)
    session_id, turn_id = await recorded_turn(
        api,
        calling(("count", {}), ("ask_client", {})),
        capabilities=[{"ref": "counting"}],
        tools=[CLIENT_TOOL],
    )
    turn = asyncio.create_task(api.services.runner.run_turn(session_id, turn_id))
    found = await wait_for(api, session_id, "tool.completed")
    turn.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await turn
    (done,) = of_type(found, "tool.completed")
    keys_before = await step_keys(api, turn_id)

    recovering = asyncio.create_task(recover(api, session_id, turn_id))
    (requested,) = of_type(found, "tool.call_requested")
    answer = {"tool_call_id": requested["tool_calls"][0]["id"], "result": "ok"}
    posted = await api.client.post(
        f"/v1/sessions/{session_id}/tool-results", json={"tool_results": [answer]}
    )
    assert posted.status_code == 200, posted.text
    found = await recovering

    assert tool.executions == 1
    server_done = [d for d in of_type(found, "tool.completed") if d["tool_name"] == "count"]
    assert server_done == [done]
    keys = await step_keys(api, turn_id)
    assert keys.count(f"tool:{done['tool_call_id']}") == 1
    assert set(keys_before) <= set(keys)
    if side_effect is SideEffect.TRANSACTIONAL:
        assert await stored_count(api, session_id) == "1"
