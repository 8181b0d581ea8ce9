"""User connections (``/v1/user/connections``): a user's API key per outside provider, and their
injection into the user's new sessions as session secrets.

A connection is the caller's: its user, in the organization the request acts for. Every token
belongs to a user (the admin token to the bootstrap admin user), so there is no caller without
one; a user who is a member of two organizations has two separate sets of connections, and no
other user nor organization ever reads, replaces or deletes them.

The key is write-only. It is sealed with the same ``crypto.SecretBox`` as providers' credentials
and session secrets, bound to ``user-connection/<org>/<user>/<provider>`` (a sealed value copied
onto another row does not open), and plaintext leaves this module only towards the session's
secrets (``SecretVault.put``), in the session create's transaction: never in a response, an
event or a log line.

Injection (:meth:`ConnectionService.inject`) happens once, at ``POST /v1/sessions``: each
connection becomes the secret ``domain.connections.secret_name(provider)`` of the new session.
The session keeps that copy: changing or removing the connection later changes the sessions
created afterwards, not this one, and a secret the session creator sets under the same name
(``PUT /v1/sessions/{id}/storage/secrets``) replaces the injected value. Subagents and
sessions made by other means start without them. A user without connections costs the create
one read of this table's primary key.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.crypto import SecretBox
from everloop.domain.connections import MAX_PROVIDER_CHARS, Connection, is_provider_name
from everloop.domain.connections import secret_name as secret_name_of
from everloop.domain.timestamps import now
from everloop.errors import Conflict, EverloopError, InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.services.session_storage import MAX_SECRET_BYTES, SecretVault
from everloop.store import user_connections as store
from everloop.store.db import Database

log = logging.getLogger("everloop.connections")

MAX_CONNECTIONS = 50  # per user and organization; also under SecretVault's per-batch limit


def check_provider(provider: str) -> None:
    if not is_provider_name(provider):
        raise InvalidInput(
            f"'{provider[:70]}' is not a valid provider name (lower-case letters and digits in "
            f"words joined by single '-', starting with a letter; at most {MAX_PROVIDER_CHARS} "
            "characters, e.g. 'github' or 'daytona')",
            field="provider",
        )


def _check_key(api_key: str) -> None:
    if not api_key.strip():
        raise InvalidInput("api_key must not be empty", field="api_key")
    if len(api_key.encode("utf-8")) > MAX_SECRET_BYTES:
        raise InvalidInput(f"api_key is at most {MAX_SECRET_BYTES} bytes", field="api_key")


class ConnectionService:
    """The caller's connections, and their injection into new sessions."""

    def __init__(self, db: Database, box: SecretBox, vault: SecretVault) -> None:
        self._db = db
        self._box = box
        self._vault = vault

    @staticmethod
    def _aad(org_id: str, user_id: str, provider: str) -> str:
        return f"user-connection/{org_id}/{user_id}/{provider}"

    async def set(self, caller: Caller, provider: str, api_key: str) -> tuple[Connection, bool]:
        """Create or replace the caller's connection to ``provider``; (it, whether it is new)."""
        check_provider(provider)
        _check_key(api_key)
        org_id, user_id = caller.organization_id, caller.user_id
        sealed = self._box.seal(api_key, self._aad(org_id, user_id, provider))
        try:
            async with self._db.write() as conn:
                if await store.get_connection(conn, org_id, user_id, provider) is None and (
                    await store.count_connections(conn, org_id, user_id) >= MAX_CONNECTIONS
                ):
                    raise InvalidInput(
                        f"a user has at most {MAX_CONNECTIONS} connections in an organization: "
                        "remove one first",
                        field="provider",
                    )
                created = await store.put_connection(conn, org_id, user_id, provider, sealed, now())
                found = await store.get_connection(conn, org_id, user_id, provider)
        except IntegrityError:
            # Two first sets of one provider at once (PostgreSQL): the loser retries.
            raise Conflict("the connection changed concurrently; retry") from None
        assert found is not None
        return found, created

    async def list(self, caller: Caller) -> list[Connection]:
        async with self._db.read() as conn:
            return await store.list_connections(conn, caller.organization_id, caller.user_id)

    async def remove(self, caller: Caller, provider: str) -> None:
        check_provider(provider)
        async with self._db.write() as conn:
            removed = await store.delete_connection(
                conn, caller.organization_id, caller.user_id, provider
            )
        if not removed:
            raise NotFound.of("connection", provider)

    async def inject(
        self, conn: AsyncConnection, org_id: str, user_id: str, session_id: str
    ) -> tuple[str, ...]:
        """Give the new session ``session_id`` (inserted in ``conn``'s transaction) the user's
        connections as secrets; returns their names. A connection that no longer opens (the
        secret key changed) is left out, with a warning naming its provider."""
        sealed = await store.sealed_keys(conn, org_id, user_id)
        if not sealed:
            return ()
        values: dict[str, str] = {}
        for provider, token in sorted(sealed.items()):
            try:
                values[secret_name_of(provider)] = self._box.open(
                    token, self._aad(org_id, user_id, provider)
                )
            except EverloopError:
                log.warning(
                    "connection %r of a user of %s does not open with the current secret key; "
                    "session %s starts without it",
                    provider,
                    org_id,
                    session_id,
                )
        await self._vault.put(conn, org_id, session_id, values)
        return tuple(sorted(values))
