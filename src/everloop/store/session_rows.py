"""Session rows: reading them into :class:`Session` values, and the listing query.

A listing is the page ``ORDER BY created_at DESC, id DESC OFFSET n LIMIT m`` would give, found
by keyset instead: a subquery seeks the row at the offset on the partial index
``ix_sessions_org_live`` (organization_id, created_at, id, deleted_at, parent_session_id) of the
live sessions (index entries only, when no filter but the default one, top-level sessions only,
needs the row) and the page is the ``m`` rows from that one on. (created_at, id) is unique, so
both give the same rows; the seek reads no table rows. The page carries the listing's total
(counted on the same index) in the same statement.

Statements are built once per shape of filter (which filters, how many tags, which sessions of
a delegation tree) with bound parameters: building them is a good part of a page's Python work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    bindparam,
    cast,
    false,
    func,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.resources import (
    PrincipalKind,
    Session,
    SessionFilter,
    SessionStatus,
    TokenTotals,
)
from everloop.store.tables import (
    harnesses,
    principals,
    session_pins,
    session_schedules,
    sessions,
)

_STORED_ONLY = (
    "last_sequence",
    "deleted_at",
    "title_search",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "root_session_id",
    "subagent_depth",
    "capability_allowlist",
    "descendant_input_tokens",
    "descendant_output_tokens",
    "descendant_cache_read_tokens",
    "descendant_cache_creation_tokens",
)
_STATUSES = {status.value: status for status in SessionStatus}
_KINDS = {kind.value: kind for kind in PrincipalKind}


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def session_select(principal: Any) -> Select[Any]:
    """Sessions with their owner's kind and subject, their enabled schedules' count, and
    whether ``principal`` (a value or a bound parameter; None: nobody) pinned each one."""
    pinned = (
        select(session_pins.c.session_id)
        .where(
            session_pins.c.session_id == sessions.c.id,
            session_pins.c.principal_id == principal,
        )
        .exists()
        if principal is not None
        else false()
    )
    # Its enabled schedules, counted in the same query (an index range per row of a page).
    scheduled = (
        select(func.count())
        .select_from(session_schedules)
        .where(session_schedules.c.session_id == sessions.c.id, session_schedules.c.enabled)
        .scalar_subquery()
    )
    return select(
        sessions,
        principals.c.kind.label("owner_kind"),
        principals.c.subject_id.label("owner_subject_id"),
        pinned.label("pinned_by"),
        scheduled.label("active_schedule_count"),
    ).select_from(sessions.outerjoin(principals, principals.c.id == sessions.c.owner_principal_id))


@dataclass(frozen=True, slots=True)
class HarnessRoot:
    """What a listing reads of each session's harness (of the session's organization): enough
    to start its chain for ``features`` without reading it again."""

    capabilities: list[Any]
    parent_harness_id: str | None


def read_sessions(
    keys: Any, rows: Any, *, with_pins: bool, roots: dict[str, HarnessRoot | None] | None = None
) -> list[Session]:
    """The sessions of the ``rows`` of a ``session_select`` result with those ``keys``. Each row
    is zipped with the keys read once: ``row._mapping`` would rebuild its key view per row.
    ``roots`` collects the harness columns of a listing's rows (None: no such harness)."""
    keys = list(keys)
    found = []
    for row in rows:
        values = dict(zip(keys, row, strict=True))
        owner_kind = values.pop("owner_kind")
        owner_subject = values.pop("owner_subject_id")
        pinned = values.pop("pinned_by")
        values.pop("total", None)
        if "harness_row_id" in values:
            harness_found = values.pop("harness_row_id")
            capabilities = values.pop("harness_capabilities")
            parent = values.pop("harness_parent_id")
            if roots is not None and values["harness_id"] not in roots:
                roots[values["harness_id"]] = (
                    HarnessRoot(_json_list(capabilities), parent) if harness_found else None
                )
        found.append(
            _session_of(
                values,
                is_pinned=bool(pinned) if with_pins else None,
                owner_kind=_KINDS[owner_kind] if owner_kind else None,
                owner_subject_id=owner_subject,
            )
        )
    return found


_PARSED: dict[str, list[Any]] = {}


def _json_list(text: str | None) -> list[Any]:
    """A harness's capabilities, read as text: a page parses each distinct value once."""
    if not text:
        return []
    parsed = _PARSED.get(text)
    if parsed is None:
        if len(_PARSED) > 1000:
            _PARSED.clear()
        parsed = _PARSED[text] = json.loads(text)
    return parsed


def session_from_row(
    row: Mapping[str, Any],
    *,
    is_pinned: bool | None,
    owner_kind: PrincipalKind | None,
    owner_subject_id: str | None,
    features: tuple[str, ...] = (),
) -> Session:
    """A :class:`Session` from the values of its ``sessions`` row (as read, or as just
    inserted) and the caller-relative facts a read joins in."""
    return _session_of(
        dict(row),
        is_pinned=is_pinned,
        owner_kind=owner_kind,
        owner_subject_id=owner_subject_id,
        features=features,
    )


def _session_of(
    values: dict[str, Any],
    *,
    is_pinned: bool | None,
    owner_kind: PrincipalKind | None,
    owner_subject_id: str | None,
    features: tuple[str, ...] = (),
) -> Session:
    values["status"] = _STATUSES[values["status"]]
    usage = TokenTotals(
        values["input_tokens"],
        values["output_tokens"],
        values["cache_read_tokens"],
        values["cache_creation_tokens"],
    )
    # Rows inserted before migration 0015, or built by hand, may lack the subagent columns.
    tree_usage = TokenTotals(
        usage.input_tokens + (values.get("descendant_input_tokens") or 0),
        usage.output_tokens + (values.get("descendant_output_tokens") or 0),
        usage.cache_read_tokens + (values.get("descendant_cache_read_tokens") or 0),
        usage.cache_creation_tokens + (values.get("descendant_cache_creation_tokens") or 0),
    )
    for key in _STORED_ONLY:
        values.pop(key, None)
    return Session(
        **values,
        usage=usage,
        tree_usage=tree_usage,
        is_pinned=is_pinned,
        owner_kind=owner_kind,
        owner_subject_id=owner_subject_id,
        features=features,
    )


# -- listing --------------------------------------------------------------------------------

# The copies of ``sessions`` the keyset seek and the total count read (an alias's column
# collection is costly to make: made once).
_SEEK = sessions.alias("seek")
_COUNTED = sessions.alias("counted")
# (dialect, agent, status, search, pinned, tag count, subagents: "top" | "children" | "all",
# owner)
_Shape = tuple[str, bool, bool, bool, bool | None, int, str, bool]
_STATEMENTS: dict[tuple[_Shape, bool], Select[Any]] = {}
_COUNTS: dict[_Shape, Select[Any]] = {}


def _shape(dialect: str, flt: SessionFilter) -> _Shape:
    return (
        dialect,
        bool(flt.agent_id),
        bool(flt.status),
        bool(flt.search),
        flt.pinned,
        len(flt.tags),
        _subagents(flt),
        bool(flt.owner_user_id),
    )


def _subagents(flt: SessionFilter) -> str:
    """Which sessions of a delegation tree a listing shows: the children of one session, all,
    or (by default) only top-level sessions, not subagents."""
    if flt.parent_session_id:
        return "children"
    return "all" if flt.include_subagents else "top"


def _conditions(table: Any, shape: _Shape) -> list[ColumnElement[bool]]:
    """The WHERE of a listing of ``shape`` over ``table`` (``sessions`` or an alias)."""
    dialect, agent, status, search, pinned, tags, subagents, owner = shape
    conds: list[ColumnElement[bool]] = [
        table.c.organization_id == bindparam("org_id"),
        table.c.deleted_at.is_(None),
    ]
    if subagents == "top":
        conds.append(table.c.parent_session_id.is_(None))
    elif subagents == "children":
        conds.append(table.c.parent_session_id == bindparam("parent_session_id"))
    if agent:
        conds.append(table.c.agent_id == bindparam("agent_id"))
    if owner:
        conds.append(table.c.resolved_owner_user_id == bindparam("owner_user_id"))
    if status:
        conds.append(table.c.status == bindparam("status"))
    if search:
        conds.append(table.c.title_search.like(bindparam("pattern"), escape="\\"))
    if pinned is not None:
        pin_exists = (
            select(session_pins.c.session_id)
            .where(
                session_pins.c.session_id == table.c.id,
                session_pins.c.principal_id == bindparam("principal_id"),
            )
            .exists()
        )
        conds.append(pin_exists if pinned else ~pin_exists)
    for index in range(tags):
        conds.append(_json_array_contains(dialect, table.c.tags, f"tag_{index}"))
    return conds


def _json_array_contains(dialect: str, column: Any, param: str) -> ColumnElement[bool]:
    """The bound value ``param`` is an element of the JSON array in ``column``."""
    if dialect == "postgresql":
        # Bound as a one-element JSON array (see _parameters).
        return column.op("@>")(bindparam(param, type_=JSONB))  # type: ignore[no-any-return]
    json_each = func.json_each(column).table_valued("value")
    return select(json_each.c.value).where(json_each.c.value == bindparam(param)).exists()


def _page_statement(shape: _Shape, seek: bool) -> Select[Any]:
    statement = _STATEMENTS.get((shape, seek))
    if statement is not None:
        return statement
    total = (
        select(func.count())
        .select_from(_COUNTED)
        .where(*_conditions(_COUNTED, shape))
        .scalar_subquery()
    )
    statement = (
        session_select(bindparam("principal_id"))
        .add_columns(
            total.label("total"),
            # The harness, for features: saves reading it after the page.
            harnesses.c.id.label("harness_row_id"),
            cast(harnesses.c.capabilities, Text).label("harness_capabilities"),
            harnesses.c.parent_harness_id.label("harness_parent_id"),
        )
        .outerjoin(
            harnesses,
            (harnesses.c.id == sessions.c.harness_id)
            & (harnesses.c.organization_id == sessions.c.organization_id),
        )
        .where(*_conditions(sessions, shape))
    )
    if seek:
        boundary = (
            select(_SEEK.c.created_at, _SEEK.c.id)
            .where(*_conditions(_SEEK, shape))
            .order_by(_SEEK.c.created_at.desc(), _SEEK.c.id.desc())
            .offset(bindparam("offset"))
            .limit(1)
            .scalar_subquery()
        )
        statement = statement.where(tuple_(sessions.c.created_at, sessions.c.id) <= boundary)
    statement = statement.order_by(sessions.c.created_at.desc(), sessions.c.id.desc()).limit(
        bindparam("limit")
    )
    _STATEMENTS[(shape, seek)] = statement
    return statement


def _count_statement(shape: _Shape) -> Select[Any]:
    statement = _COUNTS.get(shape)
    if statement is None:
        statement = _COUNTS[shape] = (
            select(func.count()).select_from(sessions).where(*_conditions(sessions, shape))
        )
    return statement


def _parameters(dialect: str, org_id: str, flt: SessionFilter, principal_id: str) -> dict[str, Any]:
    params: dict[str, Any] = {"org_id": org_id, "principal_id": principal_id}
    if flt.agent_id:
        params["agent_id"] = flt.agent_id
    if flt.parent_session_id:
        params["parent_session_id"] = flt.parent_session_id
    if flt.status:
        params["status"] = flt.status
    if flt.owner_user_id:
        params["owner_user_id"] = flt.owner_user_id
    if flt.search:
        params["pattern"] = f"%{like_escape(flt.search.lower())}%"
    for index, tag in enumerate(flt.tags):
        params[f"tag_{index}"] = [tag] if dialect == "postgresql" else tag
    return params


async def list_sessions(
    conn: AsyncConnection,
    org_id: str,
    flt: SessionFilter,
    *,
    principal_id: str,
    offset: int,
    limit: int,
) -> tuple[list[Session], int, dict[str, HarnessRoot | None]]:
    """A page of the sessions ``flt`` selects, newest first, how many there are, and what the
    page read of their harnesses."""
    dialect = conn.dialect.name
    shape = _shape(dialect, flt)
    params = _parameters(dialect, org_id, flt, principal_id)
    result = await conn.execute(
        _page_statement(shape, seek=offset > 0), {**params, "offset": offset, "limit": limit}
    )
    rows = result.all()
    if rows:
        total = int(rows[0].total)
    elif offset == 0:
        total = 0
    else:  # past the end: the page has no row to carry the total
        total = await conn.scalar(_count_statement(shape), params) or 0
    roots: dict[str, HarnessRoot | None] = {}
    return read_sessions(result.keys(), rows, with_pins=True, roots=roots), total, roots
