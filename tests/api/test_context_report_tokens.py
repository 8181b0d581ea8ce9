"""The context report's token split of the session's next model call: counted for the
session's model (its real encoding for OpenAI model names), the history a new turn would start
with (after the newest compaction checkpoint, whose summary is its own section), the model's
context window and how close the session is to compacting."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from everloop.domain.messages import Message, message_from_json
from everloop.engine.context import summary_message
from everloop.llm.tokens import TokenCounter
from tests.conftest import Api
from tests.engine.conftest import events, send, wait_turns_ended

ECHO = {"response": {"type": "echo"}}


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


async def sim_model(api: Api, model_id: str, script: dict[str, Any], **fields: Any) -> str:
    """A model on the llmsim provider (any wire name: llmsim ignores it)."""
    providers = (await api.client.get("/v1/providers")).json()["data"]
    llmsim = next(p for p in providers if p["driver"] == "llmsim")
    created = await api.client.post(
        f"/v1/providers/{llmsim['id']}/models",
        json={"model_id": model_id, "settings": {"llmsim": script}, **fields},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def new_session(api: Api, model_id: str) -> str:
    created = await api.client.post("/v1/sessions", json={"model_id": model_id})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def report(api: Api, session_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/sessions/{session_id}/context-report")
    assert response.status_code == 200, response.text
    return dict(response.json())


def section(body: dict[str, Any], key: str) -> dict[str, Any]:
    (found,) = [s for s in body["sections"] if s["key"] == key]
    return dict(found)


def turn_messages(found: list[dict[str, Any]], turn_ids: list[str]) -> list[Message]:
    """The turns' input and answers from the log, in order (plain text turns: no tools)."""
    kinds = ("input.message", "output.message.completed")
    return [
        message_from_json(e["data"]["message"])
        for e in found
        if e["type"] in kinds and e["context"]["turn_id"] in turn_ids
    ]


def turn_ids(found: list[dict[str, Any]]) -> list[str]:
    return [e["context"]["turn_id"] for e in found if e["type"] == "input.message"]


async def test_two_turns_are_the_history_counted_for_the_model(engine: Api) -> None:
    sid = await new_session(engine, await sim_model(engine, "sim-history", ECHO))
    empty = await report(engine, sid)
    assert (section(empty, "history")["tokens"], section(empty, "history")["items"]) == (0, 0)
    for number, text in enumerate(("first question", "a second, longer question"), start=1):
        await send(engine, sid, text)
        await wait_turns_ended(engine, sid, count=number)
    found = await events(engine, sid)
    turns = turn_ids(found)
    assert len(turns) == 2
    messages = turn_messages(found, turns)
    assert len(messages) == 4

    got = await report(engine, sid)
    counter = TokenCounter()
    history = section(got, "history")
    assert history["items"] == 4
    assert history["tokens"] == counter.messages("sim-history", messages) > 0
    assert section(got, "compacted_summary") == {
        "key": "compacted_summary",
        "label": "Compacted summary",
        "tokens": 0,
        "items": 0,
    }
    per_turn = [c for c in got["contributions"] if c["section_key"] == "history"]
    assert [(c["source_id"], c["label"]) for c in per_turn] == [
        (turns[0], "turn 1 (2 messages)"),
        (turns[1], "turn 2 (2 messages)"),
    ]
    assert sum(c["tokens"] for c in per_turn) == history["tokens"]
    prompt_tokens = counter.text("sim-history", got["system_prompt"])
    assert section(got, "system_prompt")["tokens"] == prompt_tokens
    assert got["token_count_method"] == "estimate"
    # The turns' usage, and a total that is the sections' sum as calibrated.
    session = (await engine.client.get(f"/v1/sessions/{sid}")).json()
    assert got["cumulative_usage"] == session["usage"]
    assert got["cumulative_usage"]["input_tokens"] > 0
    counted = sum(s["tokens"] for s in got["sections"])
    assert got["estimated_input_tokens"] == math.ceil(counted * got["calibration_ratio"])
    # No window in the model's profile: compaction is on (the generic harness) but has no
    # threshold.
    assert got["context_window_tokens"] is None
    assert got["compaction"] == {
        "active": True,
        "threshold_tokens": None,
        "last_checkpoint_id": None,
        "last_checkpoint_at": None,
    }


async def test_an_openai_model_name_is_counted_with_its_encoding(engine: Api) -> None:
    sid = await new_session(
        engine, await sim_model(engine, "gpt-4o", ECHO, profile={"context_window": 128_000})
    )
    await send(engine, sid, "héllo wörld, count me in o200k")
    await wait_turns_ended(engine, sid)
    found = await events(engine, sid)
    got = await report(engine, sid)
    assert got["token_count_method"] == "o200k_base"
    assert got["context_window_tokens"] == 128_000
    assert got["compaction"]["threshold_tokens"] == int(0.8 * 128_000)
    counter = TokenCounter()
    messages = turn_messages(found, turn_ids(found))
    assert section(got, "history")["tokens"] == counter.messages("gpt-4o", messages)
    assert counter.messages("gpt-4o", messages) != TokenCounter().messages("sim", messages)
    assert section(got, "system_prompt")["tokens"] == counter.text("gpt-4o", got["system_prompt"])
    tools = [c for c in got["contributions"] if c["section_key"] == "tools"]
    assert len(tools) == section(got, "tools")["items"] > 0


async def test_a_compacted_session_reports_its_summary_and_the_turns_after_it(
    engine: Api,
) -> None:
    window = 2_000
    model = await sim_model(
        engine,
        "sim-small",
        {"response": {"type": "lorem", "tokens": 250}},
        profile={"context_window": window},
    )
    sid = await new_session(engine, model)
    compacted: list[dict[str, Any]] = []
    for number in range(1, 9):  # bounded: the window fills in a few turns
        await send(engine, sid, f"turn {number}: tell me more")
        await wait_turns_ended(engine, sid, count=number)
        found = await events(engine, sid)
        compacted = [e for e in found if e["type"] == "context.compacted"]
        if compacted:
            break
    assert compacted, "no compaction in 8 turns"
    checkpoint = compacted[-1]["data"]
    turns = turn_ids(found)
    after = turns[turns.index(checkpoint["through_turn_id"]) + 1 :]
    assert after and len(after) < len(turns)

    got = await report(engine, sid)
    counter = TokenCounter()
    summary = summary_message(checkpoint["checkpoint_id"], checkpoint["summary"])
    assert section(got, "compacted_summary") == {
        "key": "compacted_summary",
        "label": "Compacted summary",
        "tokens": counter.message("sim-small", summary),
        "items": 1,
    }
    history = section(got, "history")
    messages = turn_messages(found, after)
    assert (history["items"], history["tokens"]) == (
        len(messages),
        counter.messages("sim-small", messages),
    )
    per_turn = [c["source_id"] for c in got["contributions"] if c["section_key"] == "history"]
    assert per_turn == after
    (summary_part,) = [c for c in got["contributions"] if c["section_key"] == "compacted_summary"]
    assert summary_part["source_id"] == checkpoint["checkpoint_id"]
    assert got["context_window_tokens"] == window
    assert got["compaction"]["active"] is True
    assert got["compaction"]["threshold_tokens"] == int(0.8 * window)
    assert got["compaction"]["last_checkpoint_id"] == checkpoint["checkpoint_id"]
    assert got["compaction"]["last_checkpoint_at"] == compacted[-1]["ts"]
    counted = sum(s["tokens"] for s in got["sections"])
    ratio = engine.services.runner.tokens.ratio("sim-small")
    assert got["calibration_ratio"] == ratio
    assert got["estimated_input_tokens"] == math.ceil(counted * ratio)


async def test_the_providers_report_calibrates_later_counts(engine: Api) -> None:
    """The estimate is corrected by the usage the provider reports: llmsim bills four
    characters a token, the counter reads ``gpt-4o`` with o200k, so after one call the ratio
    is exactly what was billed over what was counted for that prompt."""
    sid = await new_session(
        engine, await sim_model(engine, "gpt-4o", ECHO, profile={"context_window": 128_000})
    )
    before = await report(engine, sid)
    assert before["calibration_ratio"] == 1.0
    await send(engine, sid, "Grüße aus Kyiv: Привіт, світе! " * 20)
    await wait_turns_ended(engine, sid)
    found = await events(engine, sid)
    (generation,) = [e["data"] for e in found if e["type"] == "llm.generation"]
    billed = generation["metadata"]["usage"]["input_tokens"]
    # What the compaction step counted before that call: the system prompt, the tools and the
    # turn's input, with the session's encoding.
    counter = TokenCounter()
    system, user = generation["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    counted = (
        counter.text("gpt-4o", system["content"][0]["text"])
        + section(before, "tools")["tokens"]
        + counter.message("gpt-4o", message_from_json(user))
    )
    assert billed != counted
    got = await report(engine, sid)
    assert got["calibration_ratio"] == pytest.approx(billed / counted, rel=1e-9)
    sections = sum(s["tokens"] for s in got["sections"])
    assert got["estimated_input_tokens"] == math.ceil(sections * billed / counted)
    assert got["estimated_input_tokens"] != sections
