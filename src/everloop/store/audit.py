"""The audit log: one record per management change, in the change's own transaction.

A management request (a mutating route of the management API) opens an :class:`AuditScope`
for its task (``services/audit.py`` does, from the route table). The first write transaction
of that request that commits writes the scope's record *inside* itself, just before COMMIT
(``Database.write`` calls :func:`flush`): a change without its record, or a record without its
change, cannot be committed, whatever crashes. A request that fails before writing anything
leaves no record; a request that wrote nothing (a no-op) leaves none either.

The record's target is the object the route names (its last path id), or, for a route that
creates one, the first row of the expected kind the transaction inserted (seen by an engine
listener, :func:`note_insert`).

``audit_events`` is append-only in the database itself (migration 0030): UPDATE is refused,
DELETE too, except for records older than the retention in ``audit_retention``.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Delete, Insert, Update, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.timestamps import now
from everloop.store.tables_features import audit_events, audit_retention

_TYPED_ID = re.compile(r"^([a-z]+)_[0-9a-f]{32}$")
# Where the ids a write transaction inserted are noted (``conn.info``), in order, and whether
# any of its statements changed a row.
INSERTED = "everloop_audit_inserted"
CHANGED = "everloop_audit_changed"


@dataclass(slots=True)
class AuditScope:
    """The record a management request will leave, once its change commits."""

    organization_id: str
    actor_principal_id: str
    actor_user_id: str | None
    actor_kind: str
    action: str
    route: str
    target_type: str
    target_id: str | None
    created_prefix: str | None  # a creating route: the id prefix of what it creates
    changes: dict[str, Any] | None
    request_id: str | None
    client_ip: str | None
    task: asyncio.Task[Any] | None = None
    written: bool = field(default=False)


_SCOPE: contextvars.ContextVar[AuditScope | None] = contextvars.ContextVar(
    "everloop_audit_scope", default=None
)


def open_scope(scope: AuditScope) -> None:
    """Make ``scope`` the current request's (its task's: tasks it starts do not write it)."""
    scope.task = asyncio.current_task()
    _SCOPE.set(scope)


def current() -> AuditScope | None:
    scope = _SCOPE.get()
    if scope is None or scope.written or scope.task is not asyncio.current_task():
        return None
    return scope


def note_insert(info: dict[str, Any], statement: Any, params: Any) -> None:
    """An engine ``before_execute`` hook: note the typed id of each row an INSERT adds while
    a request's scope waits for its target."""
    if _SCOPE.get() is None or not isinstance(statement, Insert):
        return
    found: list[str] = info.setdefault(INSERTED, [])
    values = getattr(statement, "_values", None) or {}
    for column, bound in values.items():
        if getattr(column, "key", column) == "id":
            _note(found, getattr(bound, "value", None))
    rows = params if isinstance(params, Sequence) and not isinstance(params, str) else [params]
    for row in rows:
        if isinstance(row, dict):
            _note(found, row.get("id"))


def note_change(info: dict[str, Any], statement: Any, rowcount: int) -> None:
    """An engine ``after_execute`` hook: note that a write changed rows (a request that changed
    nothing, such as a revoke of an unknown token, leaves no record)."""
    if _SCOPE.get() is None or not isinstance(statement, Insert | Update | Delete):
        return
    if rowcount != 0:  # -1: the driver does not know; count it as a change
        info[CHANGED] = True


def _note(found: list[str], value: object) -> None:
    if isinstance(value, str) and _TYPED_ID.match(value):
        found.append(value)


async def flush(conn: AsyncConnection) -> None:
    """Write the current request's record in the transaction ``conn`` is about to commit."""
    inserted: list[str] = conn.info.pop(INSERTED, None) or []
    changed = conn.info.pop(CHANGED, False)
    scope = current()
    if scope is None or not changed:
        return
    target = scope.target_id
    if scope.created_prefix is not None:
        prefix = scope.created_prefix + "_"
        target = next((i for i in inserted if i.startswith(prefix)), target)
    await conn.execute(
        audit_events.insert().values(
            id=ids.new_id("audit"),
            organization_id=scope.organization_id,
            actor_principal_id=scope.actor_principal_id,
            actor_user_id=scope.actor_user_id,
            actor_kind=scope.actor_kind,
            action=scope.action,
            route=scope.route,
            target_type=scope.target_type,
            target_id=target,
            outcome="success",
            changes=scope.changes,
            request_id=scope.request_id,
            client_ip=scope.client_ip,
            created_at=now(),
        )
    )
    scope.written = True


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor_principal_id: str | None = None
    action: str | None = None
    target_id: str | None = None
    target_type: str | None = None
    since: str | None = None
    until: str | None = None


async def list_records(
    conn: AsyncConnection,
    organization_id: str,
    flt: AuditFilter,
    *,
    before: tuple[str, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """An organization's records, newest first, older than the cursor ``before``
    (created_at, id)."""
    t = audit_events
    query = select(t).where(t.c.organization_id == organization_id)
    if flt.actor_principal_id:
        query = query.where(t.c.actor_principal_id == flt.actor_principal_id)
    if flt.action:
        query = query.where(t.c.action == flt.action)
    if flt.target_id:
        query = query.where(t.c.target_id == flt.target_id)
    if flt.target_type:
        query = query.where(t.c.target_type == flt.target_type)
    if flt.since:
        query = query.where(t.c.created_at >= flt.since)
    if flt.until:
        query = query.where(t.c.created_at < flt.until)
    if before is not None:
        query = query.where(
            (t.c.created_at < before[0]) | ((t.c.created_at == before[0]) & (t.c.id < before[1]))
        )
    rows = await conn.execute(query.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]


async def set_retention(conn: AsyncConnection, days: int) -> None:
    """The retention the database enforces (records younger cannot be deleted)."""
    result = await conn.execute(
        update(audit_retention).where(audit_retention.c.id == 1).values(days=days)
    )
    if not result.rowcount:
        await conn.execute(audit_retention.insert().values(id=1, days=days))


async def prune(conn: AsyncConnection, before: str) -> int:
    """Delete the records created before ``before`` (past the retention); how many."""
    result = await conn.execute(delete(audit_events).where(audit_events.c.created_at < before))
    return int(result.rowcount or 0)
