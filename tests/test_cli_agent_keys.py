"""``everloop agent-keys create|list|revoke`` on a data dir a server set up: keys that reach
their agent's channel, listed without their secrets, refused once revoked (issue 18)."""

from __future__ import annotations

import asyncio

import httpx
from typer.testing import CliRunner, Result

from everloop.api.app import create_app
from everloop.bootstrap import build_services
from everloop.bootstrap_admin import bootstrap_admin
from everloop.cli.main import app
from everloop.config import Settings


def _cli(settings: Settings, *args: str) -> Result:
    env = {"COLUMNS": "200"}
    if settings.database_url:
        env["EVERLOOP_DATABASE_URL"] = settings.database_url
    return CliRunner().invoke(app, [*args, "--data-dir", str(settings.data_dir)], env=env)


async def _agent_and_channel(settings: Settings, admin: str) -> tuple[str, str]:
    services = build_services(settings)
    try:
        await services.seed_org((await services.auth.bootstrap()).organization_id)
        transport = httpx.ASGITransport(app=create_app(services))
        headers = {"Authorization": f"Bearer {admin}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://everloop.test/api", headers=headers
        ) as http:
            agent = (await http.post("/v1/agents", json={"name": "a", "system_prompt": "p"})).json()
            channel = (await http.post(f"/v1/agents/{agent['id']}/channels", json={})).json()
        return agent["id"], channel["id"]
    finally:
        await services.close()


async def _card_status(settings: Settings, key: str, channel_id: str) -> int:
    services = build_services(settings)
    try:
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://everloop.test") as http:
            response = await http.get(
                f"/api/v1/channels/{channel_id}", headers={"Authorization": f"Bearer {key}"}
            )
        return response.status_code
    finally:
        await services.close()


def test_agent_keys_are_created_listed_and_revoked(settings: Settings) -> None:
    boot = asyncio.run(bootstrap_admin(settings))
    assert boot.token is not None
    agent_id, channel_id = asyncio.run(_agent_and_channel(settings, boot.token))

    created = _cli(settings, "agent-keys", "create", "--agent", agent_id, "--name", "shop")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("evr_ak_")
    assert asyncio.run(_card_status(settings, key, channel_id)) == 200

    listing = _cli(settings, "agent-keys", "list", "--agent", agent_id)
    assert listing.exit_code == 0, listing.output
    assert key[:12] in listing.output and key[12:20] not in listing.output
    assert "live" in listing.output
    key_id = next(w for w in listing.output.split() if w.startswith("agentkey_"))

    revoked = _cli(settings, "agent-keys", "revoke", key_id)
    assert revoked.exit_code == 0 and key_id in revoked.output
    assert asyncio.run(_card_status(settings, key, channel_id)) == 401
    assert "revoked" in _cli(settings, "agent-keys", "list").output

    unknown = _cli(settings, "agent-keys", "create", "--agent", "agent_" + "0" * 32, "--name", "x")
    assert unknown.exit_code == 1 and "not found" in unknown.output
