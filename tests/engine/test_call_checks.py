"""``loop_detection`` and ``tool_call_repair`` through real turns: the API, the engine, llmsim
scripted to repeat a call or to write malformed arguments (``repeat``, ``raw_arguments``)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import Api
from tests.engine.conftest import new_session, send, types_of, wait_turns_ended

pytestmark = pytest.mark.timeout(60)

ADD_ONE_TWO = {"when": "add", "name": "add", "arguments": {"a": 1, "b": 2}}


def _repeating(times: int) -> dict[str, Any]:
    return {"response": {"type": "echo"}, "tool_calls": [ADD_ONE_TWO | {"repeat": times}]}


def _completed(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in found if e["type"] == "tool.completed"]


def _last_prompt(found: list[dict[str, Any]]) -> str:
    """The tool results the model was shown in its last call, as the wire JSON."""
    generation = [e for e in found if e["type"] == "llm.generation"][-1]
    return str(generation["data"]["messages"])


async def test_a_repeated_call_is_refused_then_fails_the_turn(engine: Api) -> None:
    capabilities = [{"ref": "test_math"}, {"ref": "loop_detection", "config": {"max_repeats": 3}}]
    sid = await new_session(engine, _repeating(10), capabilities=capabilities)
    await send(engine, sid, "add please")
    found = await wait_turns_ended(engine, sid)

    completed = _completed(found)
    ran = [c for c in completed if c["success"]]
    assert len(ran) == 3  # the counting tool ran exactly max_repeats times
    refused = [c for c in completed if c["error_kind"] == "loop_detected"]
    assert len(refused) == 2  # the warning, then the call the failure did not run
    assert "same arguments 4 times in a row" in refused[0]["error"]
    assert "Change approach" in refused[0]["error"]
    # The model saw the warning before it repeated the call a fifth time.
    assert "same arguments 4 times in a row" in _last_prompt(found)

    detected = [e["data"] for e in found if e["type"] == "tool.loop_detected"]
    assert [(d["action"], d["repeats"], d["max_repeats"]) for d in detected] == [
        ("refused", 4, 3),
        ("failed", 5, 3),
    ]
    failed = next(e["data"] for e in found if e["type"] == "turn.failed")
    assert failed["error_code"] == "loop_detected"
    assert "add was called with the same arguments 5 times in a row" in failed["error"]
    assert types_of(found)[-1] in ("turn.failed", "session.idled")
    generations = [e for e in found if e["type"] == "llm.generation"]
    assert len(generations) == 5


async def test_no_warning_allowed_fails_at_the_first_repeat_too_many(engine: Api) -> None:
    config = {"max_repeats": 2, "warnings": 0}
    capabilities = [{"ref": "test_math"}, {"ref": "loop_detection", "config": config}]
    sid = await new_session(engine, _repeating(10), capabilities=capabilities)
    await send(engine, sid, "add")
    found = await wait_turns_ended(engine, sid)
    assert sum(1 for c in _completed(found) if c["success"]) == 2
    failed = next(e["data"] for e in found if e["type"] == "turn.failed")
    assert failed["error_code"] == "loop_detected"


async def test_different_calls_in_between_start_the_count_again(engine: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            ADD_ONE_TWO | {"repeat": 4},
            {"when": "add", "name": "multiply", "arguments": {"a": 1, "b": 2}, "repeat": 4},
        ],
    }
    capabilities = [{"ref": "test_math"}, {"ref": "loop_detection", "config": {"max_repeats": 1}}]
    sid = await new_session(engine, script, capabilities=capabilities)
    await send(engine, sid, "add and multiply")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    assert all(c["success"] for c in _completed(found))
    assert len(_completed(found)) == 8


async def test_without_the_capability_repeats_all_run(engine: Api) -> None:
    sid = await new_session(engine, _repeating(5), capabilities=[{"ref": "test_math"}])
    await send(engine, sid, "add")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    assert sum(1 for c in _completed(found) if c["success"]) == 5
    assert "tool.loop_detected" not in types_of(found)


@pytest.mark.parametrize(
    ("config", "field"),
    [({"max_repeats": 0}, "max_repeats"), ({"warnings": "one"}, "warnings"), ({"x": 1}, "x")],
)
async def test_a_bad_config_is_refused(engine: Api, config: dict[str, Any], field: str) -> None:
    created = await engine.client.post(
        "/v1/sessions", json={"capabilities": [{"ref": "loop_detection", "config": config}]}
    )
    assert created.status_code == 422, created.text
    assert field in created.text


def _bad_json_script() -> dict[str, Any]:
    rule = {"when": "add", "name": "add", "raw_arguments": '{"a": 1, "b": 2,}'}
    return {"response": {"type": "echo"}, "tool_calls": [rule]}


async def test_repair_answers_unparsed_arguments_and_the_turn_completes(engine: Api) -> None:
    capabilities = [{"ref": "test_math"}, {"ref": "tool_call_repair"}]
    sid = await new_session(engine, _bad_json_script(), capabilities=capabilities)
    await send(engine, sid, "add")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    (completed,) = _completed(found)
    assert completed["error_kind"] == "invalid_arguments"
    error = completed["error"]
    assert error.startswith("the arguments of add are not valid JSON: Expecting property name")
    assert "line 1 column 17 (char 16)" in error
    assert "{a: number (required), b: number (required)}" in error
    assert "the arguments of add are not valid JSON" in _last_prompt(found)


async def test_without_repair_unparsed_arguments_meet_the_schema(engine: Api) -> None:
    sid = await new_session(engine, _bad_json_script(), capabilities=[{"ref": "test_math"}])
    await send(engine, sid, "add")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    (completed,) = _completed(found)
    assert completed["error_kind"] is None
    assert completed["error"].startswith("invalid arguments for add:")


async def test_repair_names_the_path_and_the_expected_type(engine: Api) -> None:
    rule = {"when": "add", "name": "add", "arguments": {"a": "one", "b": 2}}
    script = {"response": {"type": "echo"}, "tool_calls": [rule]}
    capabilities = [{"ref": "test_math"}, {"ref": "tool_call_repair"}]
    sid = await new_session(engine, script, capabilities=capabilities)
    await send(engine, sid, "add")
    found = await wait_turns_ended(engine, sid)
    assert "turn.completed" in types_of(found)
    (completed,) = _completed(found)
    assert completed["error"] == (
        "invalid arguments for add at $.a: expected number, got a string. "
        "Expected arguments: {a: number (required), b: number (required)}"
    )
