"""The slice of the composition root that runs before the rest: storage and admin credentials.

``everloop serve`` migrates the app database and makes sure the admin user and its first token
exist before it binds its port; ``everloop token create`` needs nothing more. Both use this
module, which stays cheap to import: the app database and the auth service only, none of the
engine, the model SDKs or the HTTP app that ``bootstrap.py`` wires for serving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from everloop.config import Settings
from everloop.services.auth import AdminBootstrap, AuthService
from everloop.store import migrate
from everloop.store.db import Database
from everloop.store.sql import Store


def prepare_storage(settings: Settings) -> None:
    """Create the data dir (owner only, like the files in it) and bring the app schema up to
    date (synchronous, before serving)."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    migrate.upgrade(settings.app_database_url)


@asynccontextmanager
async def _auth(settings: Settings) -> AsyncIterator[AuthService]:
    db = Database(settings.app_database_url, pool_size=1)
    try:
        yield AuthService(db, Store())
    finally:
        await db.close()


async def bootstrap_admin(settings: Settings) -> AdminBootstrap:
    """Create the default organization, the admin user and its first token if missing."""
    async with _auth(settings) as auth:
        return await auth.bootstrap()


async def create_token(settings: Settings, name: str) -> str:
    """Mint another personal access token for the admin user; only its hash is stored."""
    async with _auth(settings) as auth:
        return await auth.create_token(name)
