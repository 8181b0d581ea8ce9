"""``everloop token create`` on a data dir that a server set up: a new token that authenticates."""

from __future__ import annotations

import asyncio

import httpx
from typer.testing import CliRunner

from everloop.api.app import create_app
from everloop.bootstrap import build_services
from everloop.bootstrap_admin import bootstrap_admin
from everloop.cli.main import app
from everloop.config import Settings


def _token_create(settings: Settings, name: str) -> tuple[int, str]:
    env = {"EVERLOOP_DATABASE_URL": settings.database_url} if settings.database_url else {}
    args = ["token", "create", "--name", name, "--data-dir", str(settings.data_dir)]
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.output


async def _status_with(settings: Settings, token: str) -> int:
    services = build_services(settings)
    try:
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://everloop.test") as http:
            response = await http.get(
                "/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}
            )
        return response.status_code
    finally:
        await services.close()


def test_token_create_mints_a_token_that_authenticates(settings: Settings) -> None:
    boot = asyncio.run(bootstrap_admin(settings))  # what the first `everloop serve` leaves
    assert boot.token is not None
    code, output = _token_create(settings, "ci")
    assert code == 0, output
    token = output.strip().splitlines()[-1]
    assert token.startswith("evr_pat_")
    assert token != boot.token
    assert asyncio.run(_status_with(settings, token)) == 200
    assert asyncio.run(_status_with(settings, token + "x")) == 401


def test_token_create_before_any_server_says_what_to_do(settings: Settings) -> None:
    code, output = _token_create(settings, "early")
    assert code == 1
    assert "start `everloop serve` once" in output
