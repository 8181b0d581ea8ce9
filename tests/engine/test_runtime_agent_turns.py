"""Turns run the assembled RuntimeAgent: the captured agent version until rebind, and the
message's controls for one turn."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.engine.conftest import scripted_model, send, wait_turns_ended

from everloop.domain.runtime_agent import locale_instruction


def system_prompts(found: list[dict[str, Any]]) -> list[str]:
    prompts = []
    for event in found:
        if event["type"] == "llm.generation":
            first = event["data"]["messages"][0]
            prompts.append(first["content"][0]["text"] if first["role"] == "system" else "")
    return prompts


async def test_editing_an_agent_changes_no_session_until_rebind(engine: Api) -> None:
    model_id = await scripted_model(engine, {"response": {"type": "fixed", "text": "ok"}})
    created = await engine.client.post(
        "/v1/agents",
        json={"name": "pinned", "system_prompt": "Prompt one.", "default_model_id": model_id},
    )
    agent_id = created.json()["id"]
    session = await engine.client.post("/v1/sessions", json={"agent_id": agent_id})
    sid = session.json()["id"]
    await send(engine, sid, "first")
    await wait_turns_ended(engine, sid, 1)
    edited = await engine.client.patch(
        f"/v1/agents/{agent_id}", json={"system_prompt": "Prompt two."}
    )
    assert edited.status_code == 200
    await send(engine, sid, "second")
    await wait_turns_ended(engine, sid, 2)
    rebound = await engine.client.patch(f"/v1/sessions/{sid}", json={"agent_id": agent_id})
    assert rebound.status_code == 200, rebound.text
    await send(engine, sid, "third")
    found = await wait_turns_ended(engine, sid, 3)
    prompts = system_prompts(found)
    assert [p.endswith("Prompt one.") for p in prompts] == [True, True, False]
    assert prompts[2].endswith("Prompt two.")


async def test_message_controls_apply_to_one_turn(engine: Api) -> None:
    plain = await scripted_model(engine, {"response": {"type": "fixed", "text": "plain"}})
    other = await scripted_model(engine, {"response": {"type": "fixed", "text": "other"}})
    created = await engine.client.post(
        "/v1/sessions", json={"model_id": plain, "locale": "en-GB", "system_prompt": "Hi."}
    )
    sid = created.json()["id"]
    posted = await engine.client.post(
        f"/v1/sessions/{sid}/messages",
        json={
            "message": {"role": "user", "content": [{"type": "text", "text": "one"}]},
            "controls": {"model_id": other, "locale": "uk-UA", "hints": {"x": 1}},
        },
    )
    assert posted.status_code == 201, posted.text
    await wait_turns_ended(engine, sid, 1)
    await send(engine, sid, "two")
    found = await wait_turns_ended(engine, sid, 2)
    answers = [
        e["data"]["message"]["content"][0]["text"]
        for e in found
        if e["type"] == "output.message.completed"
    ]
    assert answers == ["other", "plain"]
    prompts = system_prompts(found)
    assert prompts[0].endswith(locale_instruction("uk-UA"))
    assert prompts[1].endswith(locale_instruction("en-GB"))
