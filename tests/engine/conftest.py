"""Turn tests: the real app with the DBOS engine launched in this process (tests run serially).

Waiting is event-driven: the helpers wake on the in-process "events appended" signal and
re-read the log, always inside a deadline.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.conftest import Api

TERMINAL = ("turn.completed", "turn.failed", "turn.cancelled", "turn.sealed")


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


async def scripted_model(api: Api, script: dict[str, Any]) -> str:
    providers = (await api.client.get("/v1/providers")).json()["data"]
    llmsim = next(p for p in providers if p["driver"] == "llmsim")
    created = await api.client.post(
        f"/v1/providers/{llmsim['id']}/models",
        json={"model_id": f"sim-{uuid.uuid4().hex[:8]}", "settings": {"llmsim": script}},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def new_session(api: Api, script: dict[str, Any] | None = None, **fields: Any) -> str:
    if script is not None:
        fields["model_id"] = await scripted_model(api, script)
    created = await api.client.post("/v1/sessions", json=fields)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def send(api: Api, session_id: str, text: str) -> dict[str, Any]:
    posted = await api.client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"message": {"role": "user", "content": [{"type": "text", "text": text}]}},
    )
    assert posted.status_code == 201, posted.text
    return dict(posted.json())


async def events(api: Api, session_id: str) -> list[dict[str, Any]]:
    listed = await api.client.get(f"/v1/sessions/{session_id}/events")
    assert listed.status_code == 200, listed.text
    return list(listed.json()["data"])


async def wait_for(
    api: Api, session_id: str, event_type: str, count: int = 1, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """The session's events once ``count`` events of ``event_type`` are in the log."""
    async with asyncio.timeout(timeout):
        while True:
            found = await events(api, session_id)
            if sum(1 for e in found if e["type"] == event_type) >= count:
                return found
            await api.services.signals.wait_for_events(session_id, 0.2)


async def wait_turns_ended(
    api: Api, session_id: str, count: int = 1, timeout: float = 20.0
) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while True:
            found = await events(api, session_id)
            if sum(1 for e in found if e["type"] in TERMINAL) >= count:
                return found
            await api.services.signals.wait_for_events(session_id, 0.2)


def types_of(found: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in found]
