"""A session's key-value store, its secrets and its leases.

Secrets are sealed with AES-256-GCM (``crypto.SecretBox``) with the organization, the session
and the name bound in as associated data: a sealed value copied onto another row does not open.
The one exception is a fork (``services.session_fork``): it copies its parent's sealed values
unopened, with the parent's id as ``sealed_for_session_id``, and they open there under the
parent's associated data (same organization, same name) until the fork puts its own value.
Plaintext leaves this module in one way only: ``SecretVault.values`` hands a turn the session's
secrets, in memory, to resolve ``{{secret:NAME}}`` placeholders at the point of an outbound tool
call and to redact the values from what it records (``capabilities.secrets``,
``domain.secret_refs``). It is never returned by the API, written to an event or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.timestamps import now
from everloop.errors import Conflict
from everloop.services.auth import Caller
from everloop.store import session_storage as storage
from everloop.store.db import Database
from everloop.store.session_storage import KeyValue, Lease, SecretName
from everloop.store.session_storage_rules import (
    MAX_KEY_CHARS,
    MAX_KEYS_PER_SESSION,
    MAX_LEASE_SECONDS,
    MAX_SECRET_BYTES,
    MAX_SECRETS_PER_REQUEST,
    MAX_VALUE_BYTES,
    SECRET_NAME,
    SecretVault,
    acquire_lease,
    active_leases,
    check_key,
    check_secret_name,
    set_value,
)

__all__ = [
    "MAX_KEYS_PER_SESSION",
    "MAX_KEY_CHARS",
    "MAX_LEASE_SECONDS",
    "MAX_SECRETS_PER_REQUEST",
    "MAX_SECRET_BYTES",
    "MAX_VALUE_BYTES",
    "SECRET_NAME",
    "SecretVault",
    "SessionAccess",
    "SessionStorageService",
    "acquire_lease",
    "active_leases",
    "check_key",
    "check_secret_name",
    "session_scope",
    "set_value",
]

log = logging.getLogger("everloop.leases")


class SessionAccess(Protocol):
    """What the storage services need of ``SessionService``: a 404 for a session the caller
    may not see."""

    async def get(
        self, caller: Caller, session_id: str, conn: AsyncConnection | None = None
    ) -> Any: ...


@asynccontextmanager
async def session_scope(
    db: Database, sessions: SessionAccess, caller: Caller, session_id: str, *, write: bool
) -> AsyncIterator[AsyncConnection]:
    """A connection (a transaction when ``write``) once the caller may see the session."""
    try:
        async with db.write() if write else db.read() as conn:
            await sessions.get(caller, session_id, conn)
            yield conn
    except IntegrityError:
        # Two writers inserted the same key at once (PostgreSQL); the loser retries.
        raise Conflict("the session's storage changed concurrently; retry") from None


class SessionStorageService:
    """The REST side of session storage: key listing, secret names and batch set, leases."""

    def __init__(self, db: Database, sessions: SessionAccess, vault: SecretVault) -> None:
        self._db = db
        self._sessions = sessions
        self._vault = vault
        self._sweeper: asyncio.Task[None] | None = None

    async def list_keys(self, caller: Caller, session_id: str) -> list[KeyValue]:
        async with session_scope(self._db, self._sessions, caller, session_id, write=False) as conn:
            return await storage.list_values(conn, session_id)

    async def list_secrets(self, caller: Caller, session_id: str) -> list[SecretName]:
        async with session_scope(self._db, self._sessions, caller, session_id, write=False) as conn:
            return await storage.secret_names(conn, session_id)

    async def set_secrets(self, caller: Caller, session_id: str, secrets: Mapping[str, str]) -> int:
        async with session_scope(self._db, self._sessions, caller, session_id, write=True) as conn:
            return await self._vault.put(conn, caller.organization_id, session_id, secrets)

    async def list_leases(self, caller: Caller, session_id: str) -> list[Lease]:
        async with session_scope(self._db, self._sessions, caller, session_id, write=True) as conn:
            return await active_leases(conn, session_id)

    async def sweep_expired_leases(self) -> int:
        """Release every expired lease of every session; returns how many."""
        async with self._db.write() as conn:
            return await storage.delete_expired_leases(conn, now())

    async def run_lease_sweeper(self, interval_seconds: float) -> None:
        """Sweep forever (a background task of a serving process; cancel it to stop)."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                released = await self.sweep_expired_leases()
            except Exception:  # the next sweep retries; a failure must not end the task
                log.exception("lease sweep failed")
                continue
            if released:
                log.info("released %d expired leases", released)

    def start_lease_sweeper(self, interval_seconds: float) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self.run_lease_sweeper(interval_seconds))

    async def stop_lease_sweeper(self) -> None:
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
