"""``everloop token create|list|revoke`` on a data dir that a server set up: tokens that
authenticate, may expire, are listed without their secrets and refused once revoked."""

from __future__ import annotations

import asyncio
import re

import httpx
from sqlalchemy import select
from typer.testing import CliRunner, Result

from everloop.api.app import create_app
from everloop.bootstrap import build_services
from everloop.bootstrap_admin import bootstrap_admin
from everloop.cli.main import app
from everloop.config import Settings
from everloop.services.auth import hash_token
from everloop.store.db import Database
from everloop.store.tables import access_tokens


def _cli(settings: Settings, *args: str) -> Result:
    env = {"COLUMNS": "200"}  # a wide table: ids are never folded
    if settings.database_url:
        env["EVERLOOP_DATABASE_URL"] = settings.database_url
    return CliRunner().invoke(app, [*args, "--data-dir", str(settings.data_dir)], env=env)


def _token_create(settings: Settings, name: str, *options: str) -> tuple[int, str]:
    result = _cli(settings, "token", "create", "--name", name, *options)
    return result.exit_code, result.output


def _created(settings: Settings, name: str, *options: str) -> str:
    code, output = _token_create(settings, name, *options)
    assert code == 0, output
    token = output.strip().splitlines()[-1]
    assert token.startswith("evr_pat_")
    return token


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


async def _stored(settings: Settings) -> list[tuple[str, str, str | None]]:
    """(id, hash, expires_at) of every stored token."""
    db = Database(settings.app_database_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                select(access_tokens.c.id, access_tokens.c.token_hash, access_tokens.c.expires_at)
            )
            return [(r.id, r.token_hash, r.expires_at) for r in rows]
    finally:
        await db.close()


def test_token_create_mints_a_token_that_authenticates(settings: Settings) -> None:
    boot = asyncio.run(bootstrap_admin(settings))  # what the first `everloop serve` leaves
    assert boot.token is not None
    token = _created(settings, "ci")
    assert token != boot.token
    assert asyncio.run(_status_with(settings, token)) == 200
    assert asyncio.run(_status_with(settings, token + "x")) == 401


def test_token_create_before_any_server_says_what_to_do(settings: Settings) -> None:
    code, output = _token_create(settings, "early")
    assert code == 1
    assert "start `everloop serve` once" in output


def test_tokens_with_an_expiry_are_listed_without_their_secrets(settings: Settings) -> None:
    boot = asyncio.run(bootstrap_admin(settings))
    assert boot.token is not None
    month = _created(settings, "monthly", "--expires-in", "30d")
    dated = _created(settings, "dated", "--expires-at", "2999-01-31T12:00:00Z")
    assert asyncio.run(_status_with(settings, month)) == 200
    stored = asyncio.run(_stored(settings))
    expiries = {token_hash: expires for _, token_hash, expires in stored}
    assert expiries[hash_token(boot.token)] is None
    assert expiries[hash_token(dated)] == "2999-01-31T12:00:00.000Z"
    assert expiries[hash_token(month)] is not None

    listing = _cli(settings, "token", "list")
    assert listing.exit_code == 0, listing.output
    for token_id, token_hash, _ in stored:
        assert token_id in listing.output
        assert token_hash not in listing.output
    for token in (boot.token, month, dated):
        assert token not in listing.output
        assert token[:12] in listing.output  # the prefix, to recognise it by
        assert token[12:20] not in listing.output
    assert re.search(r"monthly .*\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ .*live", listing.output)
    assert re.search(r"dated .*2999-01-31 12:00:00Z .*live", listing.output)
    assert re.search(r"admin .* never .*live", listing.output)


def test_an_expiry_in_the_past_or_unreadable_is_refused_and_nothing_written(
    settings: Settings,
) -> None:
    asyncio.run(bootstrap_admin(settings))
    code, output = _token_create(settings, "late", "--expires-at", "2001-01-01")
    assert code == 1
    assert "--expires-at" in output and "future" in output
    for options in (
        ("--expires-in", "30 days"),
        ("--expires-in", "0d"),
        ("--expires-at", "soon"),
        ("--expires-in", "1d", "--expires-at", "2999-01-01"),
    ):
        code, output = _token_create(settings, "bad", *options)
        assert code == 2, output
        assert "--expires-" in output
    assert len(asyncio.run(_stored(settings))) == 1  # the admin's own


def test_token_revoke_refuses_the_token(settings: Settings) -> None:
    asyncio.run(bootstrap_admin(settings))
    token = _created(settings, "doomed")
    [token_id] = [i for i, h, _ in asyncio.run(_stored(settings)) if h == hash_token(token)]
    revoked = _cli(settings, "token", "revoke", token_id)
    assert revoked.exit_code == 0, revoked.output
    assert asyncio.run(_status_with(settings, token)) == 401
    assert re.search(rf"{token_id} .*doomed .*revoked", _cli(settings, "token", "list").output)
    again = _cli(settings, "token", "revoke", token_id)
    assert again.exit_code == 1 and "not found" in again.output
    malformed = _cli(settings, "token", "revoke", "pat_nope")
    assert malformed.exit_code == 1 and "id" in malformed.output


def test_help_explains_the_token_commands() -> None:
    result = CliRunner().invoke(app, ["token", "--help"])
    assert result.exit_code == 0
    for command in ("create", "ls", "revoke"):  # `list` works too, not listed twice
        assert command in result.output
