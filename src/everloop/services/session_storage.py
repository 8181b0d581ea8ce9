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
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.crypto import SecretBox
from everloop.domain.messages import JsonValue
from everloop.domain.timestamps import format_ts, now
from everloop.errors import Conflict, EverloopError, InvalidInput, NotFound, PayloadTooLarge
from everloop.services.auth import Caller
from everloop.store import session_storage as storage
from everloop.store.db import Database
from everloop.store.session_storage import KeyValue, Lease, SecretName

log = logging.getLogger("everloop.leases")

MAX_KEY_CHARS = 256
MAX_VALUE_BYTES = 1024 * 1024
MAX_KEYS_PER_SESSION = 10_000
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
MAX_SECRET_BYTES = 64 * 1024
MAX_SECRETS_PER_REQUEST = 100
MAX_LEASE_SECONDS = 7 * 24 * 3600


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


# -- key-values ------------------------------------------------------------------------------


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_CHARS:
        raise InvalidInput(f"a key is 1 to {MAX_KEY_CHARS} characters", field="key")


async def set_value(conn: AsyncConnection, session_id: str, key: str, value: str) -> bool:
    check_key(key)
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        raise PayloadTooLarge(f"a value is at most {MAX_VALUE_BYTES} bytes", code="value_too_large")
    is_new = await storage.get_value(conn, session_id, key) is None
    if is_new and await storage.count_values(conn, session_id) >= MAX_KEYS_PER_SESSION:
        raise PayloadTooLarge(
            f"a session holds at most {MAX_KEYS_PER_SESSION} keys", code="too_many_keys"
        )
    return await storage.put_value(conn, session_id, key, value, now())


# -- secrets ---------------------------------------------------------------------------------


def check_secret_name(name: str) -> None:
    if not SECRET_NAME.match(name):
        raise InvalidInput(
            f"'{name[:60]}' is not a valid secret name (a letter or '_', then letters, digits, "
            "'_', '.' or '-'; at most 128 characters)",
            field="secrets",
        )


class SecretVault:
    """Seals and opens session secrets."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    @staticmethod
    def _stored_aad(org_id: str, session_id: str, name: str) -> str:
        return f"session-secret/{org_id}/{session_id}/{name}"

    async def put(
        self, conn: AsyncConnection, org_id: str, session_id: str, secrets: Mapping[str, str]
    ) -> int:
        if len(secrets) > MAX_SECRETS_PER_REQUEST:
            raise InvalidInput(
                f"at most {MAX_SECRETS_PER_REQUEST} secrets per request", field="secrets"
            )
        ts = now()
        for name, value in secrets.items():
            check_secret_name(name)
            if len(value.encode("utf-8")) > MAX_SECRET_BYTES:
                raise PayloadTooLarge(
                    f"secret '{name}' is over {MAX_SECRET_BYTES} bytes", code="secret_too_large"
                )
            sealed = self._box.seal(value, self._stored_aad(org_id, session_id, name))
            await storage.put_secret(conn, session_id, name, sealed, ts)
        return len(secrets)

    async def get(self, conn: AsyncConnection, org_id: str, session_id: str, name: str) -> str:
        found = await storage.sealed_secret(conn, session_id, name)
        if found is None:
            raise NotFound.of("secret", name)
        sealed, sealed_for = found
        return self._box.open(sealed, self._stored_aad(org_id, sealed_for, name))

    async def values(self, conn: AsyncConnection, org_id: str, session_id: str) -> dict[str, str]:
        """Every secret of the session, opened (``engine.ports.SessionSecrets``). One that no
        longer opens (the secret key changed) is left out: a placeholder naming it is an
        unknown secret, and ``secret_get`` reports why."""
        opened: dict[str, str] = {}
        for name, (sealed, sealed_for) in (await storage.sealed_secrets(conn, session_id)).items():
            with contextlib.suppress(EverloopError):
                opened[name] = self._box.open(sealed, self._stored_aad(org_id, sealed_for, name))
        return opened


# -- leases ----------------------------------------------------------------------------------


def _in(seconds: float) -> str:
    return format_ts(datetime.now(UTC) + timedelta(seconds=seconds))


async def acquire_lease(
    conn: AsyncConnection,
    session_id: str,
    name: str,
    ttl_seconds: float,
    *,
    kind: str = "lease",
    metadata: JsonValue = None,
) -> tuple[Lease, bool]:
    """Take the named lease, or refresh it when this session holds it already; returns the
    lease and whether it is new."""
    if not 0 < ttl_seconds <= MAX_LEASE_SECONDS:
        raise InvalidInput(f"ttl_seconds is between 1 and {MAX_LEASE_SECONDS}", field="ttl_seconds")
    ts = now()
    await storage.delete_expired_leases(conn, ts, session_id)
    held = await storage.get_lease(conn, session_id, name)
    lease = Lease(
        session_id=session_id,
        name=name,
        kind=kind,
        metadata=metadata if metadata is not None else (held.metadata if held else None),
        expires_at=_in(ttl_seconds),
        created_at=held.created_at if held else ts,
        updated_at=ts,
    )
    await storage.put_lease(conn, lease)
    return lease, held is None


async def active_leases(conn: AsyncConnection, session_id: str) -> list[Lease]:
    """The session's leases that have not expired; expired ones are released first (the caller
    passes a write transaction)."""
    await storage.delete_expired_leases(conn, now(), session_id)
    return await storage.list_leases(conn, session_id)


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
