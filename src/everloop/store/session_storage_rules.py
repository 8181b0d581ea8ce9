"""The rules of a session's key-values, secrets and leases, below the services: the
``key_value``, ``secrets`` and ``leased_resources`` tools use them inside a turn's step
transaction, ``services.session_storage`` behind the REST routes.

Secrets are sealed with AES-256-GCM (``crypto.SecretBox``) with the organization, the session
and the name bound in as associated data (see ``services.session_storage``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.crypto import SecretBox
from everloop.domain.messages import JsonValue
from everloop.domain.timestamps import format_ts, now
from everloop.errors import EverloopError, InvalidInput, NotFound, PayloadTooLarge
from everloop.store import session_storage as storage
from everloop.store.session_storage import Lease

MAX_KEY_CHARS = 256
MAX_VALUE_BYTES = 1024 * 1024
MAX_KEYS_PER_SESSION = 10_000
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
MAX_SECRET_BYTES = 64 * 1024
MAX_SECRETS_PER_REQUEST = 100
MAX_LEASE_SECONDS = 7 * 24 * 3600


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
