"""``stateless_todo_list`` and ``agent_instructions`` through real turns (llmsim scripts):
``write_todos``'s answers and errors as the model reads them, and the session's AGENTS.md in
the system prompt the model receives (and in the context report)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.capabilities.test_session_capability import final_text
from tests.conftest import Api
from tests.engine.conftest import new_session, send, wait_turns_ended

from everloop.capabilities.agent_instructions import MAX_INSTRUCTIONS_BYTES
from everloop.capabilities.todo_list import PROMPT
from everloop.engine.context import Transcripts

TODOS = [{"ref": "stateless_todo_list"}]
INSTRUCTIONS = [{"ref": "agent_instructions"}]
RULE = "Always answer in haiku; never mention kumquats."


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


def _todos(when: str, todos: list[dict[str, Any]]) -> dict[str, Any]:
    return {"when": when, "name": "write_todos", "arguments": {"todos": todos}}


async def _turn(api: Api, session_id: str, text: str, number: int) -> list[dict[str, Any]]:
    """Send ``text``; the events of that turn (the ``number``-th) once it ended."""
    await send(api, session_id, text)
    found = await wait_turns_ended(api, session_id, count=number)
    turn_id = [e for e in found if e["type"] == "input.message"][-1]["context"]["turn_id"]
    return [e for e in found if e["context"]["turn_id"] == turn_id]


def _tool(found: list[dict[str, Any]]) -> dict[str, Any]:
    (completed,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    return completed


def _system_prompts(found: list[dict[str, Any]]) -> list[str]:
    """The system prompt of each model call of ``found``, as the model received it."""
    prompts = []
    for generation in (e for e in found if e["type"] == "llm.generation"):
        first = generation["data"]["messages"][0]
        prompts.append(first["content"][0]["text"] if first["role"] == "system" else "")
    return prompts


async def test_write_todos_returns_the_list_and_reports_errors_to_the_model(engine: Api) -> None:
    api = engine
    two = [{"content": "a", "status": "in_progress"}, {"content": "b", "status": "in_progress"}]
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            _todos(
                "^plan",
                [
                    {"content": "  Book   flights ", "status": "completed", "id": "f"},
                    {"content": "Book hotel", "status": "in_progress"},
                    {"content": "Pack", "status": "pending"},
                ],
            ),
            _todos("^two", two),
            _todos("^dup", [{"content": "a", "status": "pending", "id": "x"}] * 2),
            _todos("^long", [{"content": "y" * 501, "status": "pending"}]),
            _todos("^many", [{"content": "z", "status": "pending"}] * 51),
            _todos("^empty", [{"content": "  ", "status": "pending"}]),
            _todos("^status", [{"content": "a", "status": "done"}]),
        ],
    }
    sid = await new_session(api, script, capabilities=TODOS)
    found = await _turn(api, sid, "plan the trip", 1)
    done = _tool(found)
    assert done["success"], done
    accepted = [
        {"content": "Book flights", "status": "completed", "id": "f"},
        {"content": "Book hotel", "status": "in_progress"},
        {"content": "Pack", "status": "pending"},
    ]
    assert json.loads(done["result"][0]["text"]) == {
        "todos": accepted,
        "counts": {"pending": 1, "in_progress": 1, "completed": 1},
    }
    assert all(PROMPT in p for p in _system_prompts(found))

    expected = {
        "two": "at most one todo may be in_progress (got 2: todos[0], todos[1])",
        "dup": "todos[1] (id 'x'): id 'x' is already used by todos[0]",
        "long": "todos[0]: content must be at most 500 characters (got 501)",
        "many": "at most 50 todos (got 51)",
        "empty": "todos[0]: content must not be empty",
        "status": "invalid arguments for write_todos at 'todos/0/status'",
    }
    for number, (word, error) in enumerate(expected.items(), start=2):
        found = await _turn(api, sid, f"{word} todos", number)
        failed = _tool(found)
        assert not failed["success"] and error in failed["error"], (word, failed)
        # The model's next call had the error as the call's result (echo repeats it).
        assert f"write_todos: error: {error}" in final_text(found), word

    # Stateless: the plan's only copy is the first turn's call and result, in the history the
    # model is given on every later turn.
    last_turn = found[0]["context"]["turn_id"]
    async with api.services.db.read() as conn:
        view = await Transcripts().conversation(conn, sid, before_turn=last_turn)
    first_turn = view.turns[0][1]
    (call,) = [c for m in first_turn for c in m.tool_calls]
    (result,) = [r for m in first_turn for r in m.tool_results]
    assert call.name == "write_todos" and call.arguments["todos"][1]["content"] == "Book hotel"
    assert result.tool_call_id == call.id and result.error is None
    assert json.loads(str(result.result))["todos"] == accepted


async def test_agents_md_joins_the_system_prompt_with_the_capability_only(engine: Api) -> None:
    api = engine
    script = {"response": {"type": "fixed", "text": "ok"}}
    files = [{"path": "/AGENTS.md", "content": f"# House rules\n\n{RULE}\n"}]
    with_it = await new_session(
        api, script, capabilities=INSTRUCTIONS, system_prompt="Be brief.", initial_files=files
    )
    without = await new_session(api, script, system_prompt="Be brief.", initial_files=files)

    (prompt,) = _system_prompts(await _turn(api, with_it, "hello", 1))
    # After the rest of the prompt.
    assert prompt.index("Be brief.") < prompt.index("/AGENTS.md") < prompt.index(RULE)
    (plain,) = _system_prompts(await _turn(api, without, "hello", 1))
    assert RULE not in plain and "AGENTS.md" not in plain

    report = (await api.client.get(f"/v1/sessions/{with_it}/context-report")).json()
    assert RULE in report["system_prompt"]
    (part,) = [c for c in report["contributions"] if c["source_id"] == "agent_instructions"]
    assert part["section_key"] == "system_prompt" and part["label"] == "AGENTS.md"
    assert part["tokens"] > 0
    plain_report = (await api.client.get(f"/v1/sessions/{without}/context-report")).json()
    assert RULE not in plain_report["system_prompt"]
    assert all(c["source_id"] != "agent_instructions" for c in plain_report["contributions"])

    # A change applies from the next turn; a removed file is no longer there.
    fs = f"/v1/sessions/{with_it}/fs/AGENTS.md"
    changed = await api.client.put(fs, json={"content": "Answer in French."})
    assert changed.status_code == 200, changed.text
    (prompt,) = _system_prompts(await _turn(api, with_it, "again", 2))
    assert "Answer in French." in prompt and RULE not in prompt
    assert (await api.client.delete(fs)).status_code in (200, 204)
    (prompt,) = _system_prompts(await _turn(api, with_it, "and again", 3))
    assert prompt.endswith("Be brief.") and "AGENTS.md" not in prompt


async def test_a_large_agents_md_is_cut_with_a_note(engine: Api) -> None:
    api = engine
    script = {"response": {"type": "fixed", "text": "ok"}}
    body = ("é" * 20 + "\n") * 2000  # 82,000 bytes; a two-byte character at every boundary
    sid = await new_session(
        api,
        script,
        capabilities=INSTRUCTIONS,
        initial_files=[{"path": "/AGENTS.md", "content": body}],
    )
    (prompt,) = _system_prompts(await _turn(api, sid, "hello", 1))
    assert f"only its first {MAX_INSTRUCTIONS_BYTES} bytes are shown" in prompt
    assert f"is {len(body.encode())} bytes" in prompt
    assert len(prompt.encode()) < MAX_INSTRUCTIONS_BYTES + 1024
    assert "\ufffd" not in prompt
