"""Agent versions: every create and update writes one; manual saves, default, diff, rollback;
sessions capture a version at creation and on rebind."""

from __future__ import annotations

from typing import Any

from everruns_sdk.models import AgentVersion, AgentVersionDiffResponse

from tests.api.conftest import create_agent, create_session
from tests.conftest import Api


async def versions(api: Api, agent_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"/v1/agents/{agent_id}/versions")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    for version in found:
        AgentVersion(**version)  # the everruns-sdk model parses it
    return found


async def patch_agent(api: Api, agent_id: str, **fields: Any) -> dict[str, Any]:
    response = await api.client.patch(f"/v1/agents/{agent_id}", json=fields)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_create_and_update_write_versions(api: Api) -> None:
    agent = await create_agent(api, "versioned", system_prompt="One.")
    (first,) = await versions(api, agent["id"])
    assert first["id"].startswith("agentver_")
    assert (first["version_number"], first["version"], first["change_kind"]) == (1, "0.1.0", "auto")
    assert first["is_published"] is False
    assert first["authored_config"]["system_prompt"] == "One."
    assert first["resolved_config"]["system_prompt"].endswith("One.")
    assert first["config_hash"].startswith("sha256:")
    await patch_agent(api, agent["id"], system_prompt="Two.")
    second, again = await versions(api, agent["id"])
    assert (second["version_number"], second["version"]) == (2, "0.1.1")
    assert second["parent_version_id"] == first["id"]
    assert second["config_hash"] != first["config_hash"]
    assert again == first  # immutable

    saved = await api.client.post(
        f"/v1/agents/{agent['id']}/versions", json={"change_kind": "minor", "summary": "ship"}
    )
    assert saved.status_code == 200, saved.text
    minor = AgentVersion(**saved.json())
    assert (minor.version_number, minor.version, minor.is_published) == (3, "0.2.0", True)
    assert minor.summary == "ship"
    assert minor.config_hash == second["config_hash"]  # same authored config

    diff = await api.client.get(
        f"/v1/agents/{agent['id']}/versions/{first['id']}/diff/{second['id']}"
    )
    assert diff.status_code == 200, diff.text
    parsed = AgentVersionDiffResponse(**diff.json())
    assert parsed.authored_diff == {"system_prompt": {"from": "One.", "to": "Two."}}
    assert "system_prompt" in parsed.resolved_diff


async def test_rollback_restores_the_config_as_a_new_version(api: Api) -> None:
    agent = await create_agent(api, "rolling", system_prompt="Good.", max_iterations=3)
    (good,) = await versions(api, agent["id"])
    await patch_agent(api, agent["id"], system_prompt="Broken.", max_iterations=9)
    rolled = await api.client.post(
        f"/v1/agents/{agent['id']}/versions/{good['id']}/rollback",
        json={"summary": "revert", "save_version": True},
    )
    assert rolled.status_code == 200, rolled.text
    assert (rolled.json()["system_prompt"], rolled.json()["max_iterations"]) == ("Good.", 3)
    latest, saved, *_ = await versions(api, agent["id"])
    assert saved["change_kind"] == "manual"
    assert saved["authored_config"]["system_prompt"] == "Broken."
    assert latest["change_kind"] == "rollback"
    assert latest["source_version_id"] == good["id"]
    assert latest["summary"] == "revert"
    assert latest["config_hash"] == good["config_hash"]
    missing = await api.client.post(
        f"/v1/agents/{agent['id']}/versions/agentver_{'0' * 32}/rollback", json={}
    )
    assert missing.status_code == 404


async def test_sessions_capture_the_default_or_latest_version_and_rebind(api: Api) -> None:
    agent = await create_agent(api, "bound", system_prompt="V1.")
    (v1,) = await versions(api, agent["id"])
    session = await create_session(api, agent_id=agent["id"])
    assert session["agent_version_id"] == v1["id"]
    await patch_agent(api, agent["id"], system_prompt="V2.")
    v2 = (await versions(api, agent["id"]))[0]
    report = (await api.client.get(f"/v1/sessions/{session['id']}/context-report")).json()
    assert report["system_prompt"].endswith("V1.")  # editing the agent changed nothing here
    later = await create_session(api, agent_id=agent["id"])
    assert later["agent_version_id"] == v2["id"]

    default = await api.client.post(
        f"/v1/agents/{agent['id']}/versions/default", json={"version_id": v1["id"]}
    )
    assert default.status_code == 200, default.text
    assert default.json()["default_version_id"] == v1["id"]
    pinned = await create_session(api, agent_id=agent["id"])
    assert pinned["agent_version_id"] == v1["id"]

    other = await create_agent(api, "other-bound", system_prompt="Other.")
    rebound = await api.client.patch(
        f"/v1/sessions/{session['id']}", json={"agent_id": other["id"]}
    )
    assert rebound.status_code == 200, rebound.text
    assert rebound.json()["agent_id"] == other["id"]
    assert rebound.json()["agent_version_id"] == (await versions(api, other["id"]))[0]["id"]
    report = (await api.client.get(f"/v1/sessions/{session['id']}/context-report")).json()
    assert report["system_prompt"].endswith("Other.")
    bad = await api.client.post(
        f"/v1/agents/{agent['id']}/versions/default", json={"version_id": v2["id"][:-1] + "x"}
    )
    assert bad.status_code in (400, 404, 422)
