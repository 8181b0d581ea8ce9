"""The slice of the composition root that runs before the rest: storage and admin credentials.

``everloop serve`` migrates the app database and makes sure the admin user and its first token
exist before it binds its port; the ``everloop token`` and ``everloop agent-keys`` commands need
nothing more (and run beside a server: they take no lock on the data dir). They use this
module, which stays cheap to import: the app database and the auth services only, none of
the engine, the model SDKs or the HTTP app that ``bootstrap.py`` wires for serving.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from everloop.config import Settings
from everloop.domain.resources import AccessToken
from everloop.services.agent_channels import AgentChannelService
from everloop.services.auth import AdminBootstrap, AuthService
from everloop.store import migrate
from everloop.store.channels import AgentKeyRow
from everloop.store.db import Database
from everloop.store.sql import Store
from everloop.store.tokens import RevocationMarker


def prepare_storage(settings: Settings) -> None:
    """Create the data dir (owner only, like the files in it) and bring the app schema up to
    date (synchronous, before serving)."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    migrate.upgrade(settings.app_database_url, seal_headers=header_sealer(settings))


def header_sealer(settings: Settings) -> migrate.HeaderSealer:
    """Seals scoped MCP header values as ``services.mcp_servers.ScopedMcpHeaders`` does (the
    key and ``cryptography`` load only if a migration has something to seal)."""

    def seal(org_id: str, name: str, headers: dict[str, str]) -> str:
        from everloop.crypto import SecretBox
        from everloop.domain.mcp import scoped_headers_aad

        return SecretBox.from_settings(settings).seal(
            json.dumps(headers), scoped_headers_aad(org_id, name)
        )

    return seal


def revocation_marker(settings: Settings) -> RevocationMarker:
    """The file whose change tells every process on this data dir that a token was revoked."""
    return RevocationMarker(settings.data_dir / "tokens-revoked")


@asynccontextmanager
async def _auth(settings: Settings) -> AsyncIterator[AuthService]:
    db = Database(settings.app_database_url, pool_size=1)
    try:
        yield AuthService(db, Store(), revocations=revocation_marker(settings))
    finally:
        await db.close()


async def bootstrap_admin(settings: Settings) -> AdminBootstrap:
    """Create the default organization, the admin user and its first token if missing."""
    async with _auth(settings) as auth:
        return await auth.bootstrap()


async def create_token(settings: Settings, name: str, expires_at: datetime | None = None) -> str:
    """Mint another personal access token for the admin user; only its hash is stored."""
    async with _auth(settings) as auth:
        return await auth.create_token(name, expires_at)


async def list_tokens(settings: Settings) -> list[AccessToken]:
    """Every token of the database, revoked ones included (never the tokens themselves)."""
    async with _auth(settings) as auth:
        return await auth.list_all_tokens()


async def revoke_token(settings: Settings, token_id: str) -> None:
    """Revoke a token; a server on the same data dir refuses it from its next request on."""
    async with _auth(settings) as auth:
        await auth.revoke_any_token(token_id)


@asynccontextmanager
async def _agent_channels(settings: Settings) -> AsyncIterator[AgentChannelService]:
    db = Database(settings.app_database_url, pool_size=1)
    try:
        yield AgentChannelService(db, Store(), revocations=revocation_marker(settings))
    finally:
        await db.close()


async def create_agent_key(
    settings: Settings,
    agent_id: str,
    name: str,
    permissions: list[str],
    expires_at: datetime | None = None,
) -> tuple[AgentKeyRow, str]:
    """Mint an agent key for an agent of any organization; only its hash is stored."""
    async with _agent_channels(settings) as channels:
        return await channels.create_key_any(agent_id, name, permissions, expires_at)


async def list_agent_keys(settings: Settings, agent_id: str | None) -> list[AgentKeyRow]:
    """Every agent key (of one agent), revoked ones included (never the keys themselves)."""
    async with _agent_channels(settings) as channels:
        return await channels.list_keys_any(agent_id)


async def revoke_agent_key(settings: Settings, key_id: str) -> None:
    """Revoke an agent key; a server on the same data dir refuses it from its next request."""
    async with _agent_channels(settings) as channels:
        await channels.revoke_key_any(key_id)
