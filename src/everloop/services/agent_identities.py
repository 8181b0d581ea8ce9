"""Agent identities: the resident principals sessions run as when nobody is watching.

Creating an identity creates its principal (kind ``agent_identity``, parented to the caller's
principal, who owns the identity) in the same transaction; deleting it deletes both, and is
refused (409) while a live session names it. Sessions name one in ``agent_identity_id``, which
must be an identity of the session's organization (``check_identity``, a 422 otherwise).

``name`` (a slug) and ``locale`` (BCP 47) are checked where the request is parsed, as for
other resources and sessions (``api.schemas``); ``timezone`` is an IANA zone, checked here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.agent_identities import AgentIdentity
from everloop.domain.schedules import parse_zone
from everloop.domain.timestamps import now
from everloop.errors import Conflict, InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.store import agent_identities as store
from everloop.store.db import Database

_FIELD = "agent_identity_id"
_EDITABLE = ("display_name", "description", "locale", "timezone")  # null clears these


async def check_identity(conn: AsyncConnection, org_id: str, identity_id: str | None) -> None:
    """``identity_id`` (when set) names an agent identity of ``org_id``, else a 422 naming
    ``agent_identity_id``. On PostgreSQL the identity then cannot be deleted before the
    caller's transaction ends (``store.agent_identities.hold``)."""
    if identity_id is None:
        return
    ids.parse("identity", identity_id, field=_FIELD)
    if not await store.hold(conn, org_id, identity_id):
        raise InvalidInput(
            f"agent identity '{identity_id}' does not exist in this organization "
            "(GET /v1/agent-identities lists them)",
            code="unknown_agent_identity",
            field=_FIELD,
        )


def _check_timezone(fields: dict[str, Any]) -> None:
    if fields.get("timezone") is not None:
        parse_zone(fields["timezone"], field="timezone")


class AgentIdentityService:
    """Create, read, list, update and delete the agent identities of the caller's org."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, caller: Caller, fields: dict[str, Any]) -> AgentIdentity:
        _check_timezone(fields)
        ts = now()
        identity = AgentIdentity(
            id=ids.new_id("identity"),
            organization_id=caller.organization_id,
            principal_id=ids.new_id("principal"),
            owner_principal_id=caller.principal_id,
            name=fields["name"],
            display_name=fields.get("display_name"),
            description=fields.get("description"),
            locale=fields.get("locale"),
            timezone=fields.get("timezone"),
            created_at=ts,
            updated_at=ts,
        )
        async with self._db.write() as conn:
            await _check_name_free(conn, caller.organization_id, identity.name)
            try:
                await store.insert(conn, identity, parent_principal_id=caller.principal_id)
            except IntegrityError as exc:  # a create of the same name raced past the check
                raise _taken(identity.name) from exc
        return identity

    async def get(self, caller: Caller, identity_id: str) -> AgentIdentity:
        async with self._db.read() as conn:
            return await _get(conn, caller.organization_id, identity_id)

    async def list(self, caller: Caller, *, search: str | None = None) -> list[AgentIdentity]:
        async with self._db.read() as conn:
            return await store.list_identities(conn, caller.organization_id, search=search)

    async def update(
        self, caller: Caller, identity_id: str, fields: dict[str, Any]
    ) -> AgentIdentity:
        """A PATCH: fields left out stay; ``name`` may not be null, the others null clear."""
        _check_timezone(fields)
        org = caller.organization_id
        values = {key: fields[key] for key in _EDITABLE if key in fields}
        if fields.get("name") is not None:
            values["name"] = fields["name"]
        async with self._db.write() as conn:
            current = await _get(conn, org, identity_id)
            if values.get("name", current.name) != current.name:
                await _check_name_free(conn, org, values["name"])
            if values:
                values["updated_at"] = now()
                try:
                    await store.update_identity(conn, org, identity_id, values)
                except IntegrityError as exc:
                    raise _taken(values.get("name", current.name)) from exc
            updated = await store.get_identity(conn, org, identity_id)
        assert updated is not None
        return updated

    async def delete(self, caller: Caller, identity_id: str) -> None:
        """Delete the identity and its principal; 409 while live sessions name it."""
        org = caller.organization_id
        ids.parse("identity", identity_id, field="identity_id")
        async with self._db.write() as conn:
            identity = await store.lock(conn, org, identity_id)
            if identity is None:
                raise NotFound.of("agent identity", identity_id)
            named_by = await store.live_session_count(conn, org, identity_id)
            if named_by:
                sessions = "session names" if named_by == 1 else "sessions name"
                raise Conflict(
                    f"agent identity '{identity.name}' is in use: {named_by} live {sessions} "
                    "it. Delete those sessions, or set their agent_identity_id to another "
                    "identity or null (PATCH /v1/sessions/{id}), then delete it again",
                    code="agent_identity_in_use",
                )
            await store.delete_identity(conn, org, identity_id)


async def _get(conn: AsyncConnection, org_id: str, identity_id: str) -> AgentIdentity:
    ids.parse("identity", identity_id, field="identity_id")
    found = await store.get_identity(conn, org_id, identity_id)
    if found is None:
        raise NotFound.of("agent identity", identity_id)
    return found


async def _check_name_free(conn: AsyncConnection, org_id: str, name: str) -> None:
    if await store.get_by_name(conn, org_id, name) is not None:
        raise _taken(name)


def _taken(name: str) -> Conflict:
    return Conflict(f"an agent identity named '{name}' already exists", field="name")
