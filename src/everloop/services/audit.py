"""The audit log's rules: which requests leave a record, what it names, who reads it.

Every mutating request of the management API (POST, PUT, PATCH, DELETE on a route of the route
table other than the Agent Execution API's) opens a scope (``store/audit.py``) before the route
runs; the request's first committed write transaction writes the record. Left out: the routes
that read with POST (previews, dry-runs, grep, stat) and the traffic of turns (a session's
messages and client tool results), which is in the session's own event log.

A record names its action (``agents.update``, ``sessions.cancel``, ``orgs.members.create``),
the route, the target (its type and id: the object the path names, or the one the request
created), the actor principal, the request id and the client address, and the fields the
request changed, with the values of secret-looking fields (keys, tokens, secrets, passwords,
headers) replaced by ``"[redacted]"``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from everloop.domain.timestamps import format_ts
from everloop.errors import InvalidInput
from everloop.services.auth import Caller
from everloop.store import audit as store
from everloop.store.audit import AuditFilter as AuditFilter  # the routes filter with it
from everloop.store.audit import AuditScope
from everloop.store.db import Database

VERBS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
# A path segment naming a collection (a POST to it creates, a DELETE below it deletes); any
# other literal last segment is an action on the object before it (copy, cancel, top-up).
COLLECTIONS = frozenset(
    {
        "keys",
        "channels",
        "versions",
        "members",
        "databases",
        "models",
        "health-checks",
        "fs",
        "connections",
        "secrets",
        "pin",
        "sessions",
        "api-keys",
        "schedules",
    }
)
# What a creating route's new object's id starts with, by the collection it is created in.
CREATED = {
    "agents": "agent",
    "harnesses": "harness",
    "providers": "provider",
    "models": "model",
    "mcp-servers": "mcp",
    "memories": "mem",
    "agent-identities": "identity",
    "budgets": "budget",
    "workspaces": "wsp",
    "sessions": "session",
    "schedules": "sched",
    "api-keys": "pat",
    "keys": "agentkey",
    "channels": "apichan",
    "versions": "agentver",
    "orgs": "org",
    "members": "principal",
    "health-checks": "healthcheck",
    "copy": "agent",
    "import": "agent",
    "fork": "session",
}
NOT_AUDITED = frozenset(
    {
        ("POST", "/v1/agents/analyze"),
        ("POST", "/v1/agents/preview"),
        ("POST", "/v1/harnesses/preview"),
        ("POST", "/v1/capabilities/guardrails/dry-run"),
        ("POST", "/v1/sessions/{session_id}/messages"),
        ("POST", "/v1/sessions/{session_id}/tool-results"),
    }
)
_READS = ("/fs/_/grep", "/fs/_/stat")
_SECRET = re.compile(r"key|token|secret|password|credential|header|authorization", re.I)
_PARAM = re.compile(r"^{(\w+)(?::\w+)?}$")
MAX_VALUE = 500
REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True)
class RouteAction:
    action: str
    target_type: str
    target_param: str | None  # the path parameter naming the target
    inner_param: str | None  # a file path or database name inside it
    created_prefix: str | None


@functools.lru_cache(maxsize=1024)
def route_action(method: str, template: str) -> RouteAction | None:
    """What a request to ``template`` does, for its record; None: not audited."""
    if method not in VERBS or (method, template) in NOT_AUDITED or template.endswith(_READS):
        return None
    parts = [p for p in template.removeprefix("/v1/").split("/") if p and p != "_"]
    if parts[:1] in (["durable"], ["auth"], ["admin"], ["user"]):
        parts = parts[1:]
    resource, rest = parts[0], parts[1:]
    literals = [p for p in rest if not _PARAM.match(p)]
    params = [m.group(1) for p in rest if (m := _PARAM.match(p))]
    last_is_param = bool(rest) and bool(_PARAM.match(rest[-1]))
    collection = resource if not literals else literals[-1]
    is_crud = not literals or last_is_param or literals[-1] in COLLECTIONS
    words = [resource, *literals] + ([VERBS[method]] if is_crud else [])
    creating = method == "POST" and not last_is_param and (is_crud or collection in CREATED)
    if method == "POST" and is_crud and collection == "fs":
        creating = False
    ids_ = [p for p in params if p.endswith("_id") or p in ("provider",)]
    inner = next((p for p in params if p in ("path", "name")), None)
    target_type = collection if is_crud else (literals[-2] if len(literals) > 1 else resource)
    return RouteAction(
        action=".".join(w.replace("-", "_") for w in words),
        target_type=target_type.replace("-", "_"),
        target_param=ids_[-1] if ids_ else None,
        inner_param=inner,
        created_prefix=_created(resource, collection) if creating else None,
    )


def _created(resource: str, collection: str) -> str | None:
    if collection == "fork" and resource == "agents":
        return "agent"  # a version forked into a new agent
    return CREATED.get(collection)


def redacted(body: Any, depth: int = 0) -> Any:
    """The fields of a request body as a record keeps them: secret-looking ones redacted,
    long values cut."""
    if isinstance(body, dict):
        return {
            str(k)[:100]: REDACTED if _SECRET.search(str(k)) else redacted(v, depth + 1)
            for k, v in list(body.items())[:50]
        }
    if isinstance(body, list):
        return [redacted(v, depth + 1) for v in body[:20]]
    if isinstance(body, str) and len(body) > MAX_VALUE:
        return body[:MAX_VALUE] + "..."
    return body if depth < 6 else "..."


class AuditService:
    def __init__(self, db: Database, *, retention_days: int) -> None:
        self._db = db
        self._retention_days = retention_days

    @staticmethod
    def audits(method: str, template: str) -> bool:
        """Whether a request to ``template`` leaves a record when it changes something."""
        return route_action(method, template) is not None

    def open(
        self,
        caller: Caller,
        method: str,
        template: str,
        path_params: dict[str, Any],
        body: Any,
        request_id: str | None,
        client_ip: str | None,
    ) -> None:
        """Open the scope of a management request (nothing for a route not audited)."""
        what = route_action(method, template)
        if what is None:
            return
        target = path_params.get(what.target_param) if what.target_param else None
        if what.inner_param and path_params.get(what.inner_param) is not None:
            target = f"{target}:{path_params[what.inner_param]}"
        store.open_scope(
            AuditScope(
                organization_id=caller.organization_id,
                actor_principal_id=caller.principal_id,
                actor_user_id=caller.user_id or None,
                actor_kind=caller.kind.value,
                action=what.action,
                route=f"{method} {template}"[:200],
                target_type=what.target_type,
                target_id=str(target)[:200] if target is not None else None,
                created_prefix=what.created_prefix,
                changes=redacted(body) if isinstance(body, dict) and body else None,
                request_id=request_id,
                client_ip=client_ip,
            )
        )

    async def list(
        self, caller: Caller, flt: AuditFilter, *, before: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the organization's records, newest first, and the cursor of the next."""
        cursor = _cursor(before)
        async with self._db.read() as conn:
            rows = await store.list_records(
                conn, caller.organization_id, flt, before=cursor, limit=limit + 1
            )
        more = len(rows) > limit
        rows = rows[:limit]
        following = f"{rows[-1]['created_at']}|{rows[-1]['id']}" if more and rows else None
        return rows, following

    async def start(self) -> None:
        """Tell the database the retention it enforces, and prune what is past it."""
        cutoff = format_ts(datetime.now(UTC) - timedelta(days=self._retention_days))
        async with self._db.write() as conn:
            await store.set_retention(conn, self._retention_days)
            await store.prune(conn, cutoff)


def _cursor(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    created, sep, record = value.partition("|")
    if not sep or not record.startswith("audit_"):
        raise InvalidInput("before must be a cursor from a previous page", field="before")
    return created, record
