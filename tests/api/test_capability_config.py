"""A capability's ``config`` is checked against its ``config_schema`` wherever capabilities are
named (harness, agent, session): a misfit is a 422 naming the field, and nothing is written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import create_agent
from tests.conftest import Api

BAD = [
    ({"risk": "extreme"}, "capabilities.0.config.risk"),
    ({"tools": "kv_set"}, "capabilities.0.config.tools"),
    ({"timeout_seconds": 0}, "capabilities.0.config.timeout_seconds"),
    ({"everything": True}, "capabilities.0.config"),
]


@pytest.mark.parametrize(("config", "field"), BAD)
async def test_an_agent_with_a_misfit_config_is_refused(
    api: Api, config: dict[str, Any], field: str
) -> None:
    response = await api.client.post(
        "/v1/agents",
        json={
            "name": "gated",
            "system_prompt": "You help.",
            "capabilities": [{"ref": "tool_approval", "config": config}],
        },
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_capability_config", field)
    assert "tool_approval" in error["message"]
    listed = (await api.client.get("/v1/agents", params={"search": "gated"})).json()["data"]
    assert listed == []


async def test_sessions_and_harnesses_are_checked_too(api: Api) -> None:
    agent = await create_agent(api, "plain")
    session = await api.client.post(
        "/v1/sessions",
        json={
            "agent_id": agent["id"],
            "capabilities": [{"ref": "ask_user", "config": {"timeout_seconds": "soon"}}],
        },
    )
    assert session.status_code == 422, session.text
    assert session.json()["error"]["field"] == "capabilities.0.config.timeout_seconds"
    harness = await api.client.post(
        "/v1/harnesses",
        json={
            "name": "approving",
            "system_prompt": "You help.",
            "capabilities": [{"ref": "tool_approval", "config": {"risk": 3}}],
        },
    )
    assert harness.status_code == 422, harness.text
    good = await api.client.post(
        "/v1/sessions",
        json={
            "agent_id": agent["id"],
            "capabilities": [
                {"ref": "tool_approval", "config": {"tools": ["kv_set"], "timeout_seconds": 30}}
            ],
        },
    )
    assert good.status_code == 201, good.text
