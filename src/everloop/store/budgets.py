"""Budgets and their ledger (tables ``budgets``, ``budget_ledger``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.budgets import Budget
from everloop.store.tables import budget_ledger, budgets, sessions

_B = budgets
_L = budget_ledger
Subject = tuple[str, str]  # (subject_type, subject_id)


def budget_of(row: Mapping[Any, Any]) -> Budget:
    values = {key: row[key] for key in Budget.__dataclass_fields__}
    values["limit"] = float(values["limit"])
    values["balance"] = float(values["balance"])
    return Budget(**values)


def _values(budget: Budget) -> dict[str, Any]:
    return {key: getattr(budget, key) for key in Budget.__dataclass_fields__}


async def insert_budget(conn: AsyncConnection, budget: Budget) -> None:
    await conn.execute(_B.insert().values(**_values(budget)))


async def save_budget(conn: AsyncConnection, budget: Budget) -> None:
    """Write every field of ``budget`` to its row."""
    values = _values(budget)
    values.pop("id")
    await conn.execute(update(_B).where(_B.c.id == budget.id).values(**values))


async def get_budget(
    conn: AsyncConnection, org_id: str, budget_id: str, *, lock: bool = False
) -> Budget | None:
    """The organization's budget (None when it has none by that id, or it was deleted)."""
    query = select(_B).where(
        _B.c.organization_id == org_id, _B.c.id == budget_id, _B.c.status != "disabled"
    )
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return budget_of(row) if row is not None else None


async def list_budgets(
    conn: AsyncConnection,
    org_id: str,
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
) -> list[Budget]:
    conditions: list[ColumnElement[bool]] = [
        _B.c.organization_id == org_id,
        _B.c.status != "disabled",
    ]
    if subject_type is not None:
        conditions.append(_B.c.subject_type == subject_type)
    if subject_id is not None:
        conditions.append(_B.c.subject_id == subject_id)
    rows = (await conn.execute(select(_B).where(*conditions).order_by(_B.c.id))).mappings()
    return [budget_of(row) for row in rows]


async def applicable(
    conn: AsyncConnection, org_id: str, subjects: Sequence[Subject], *, lock: bool = False
) -> list[Budget]:
    """The live budgets of any of ``subjects``, in id order (the order charges lock them in,
    so two charges never wait for each other crosswise)."""
    if not subjects:
        return []
    matches = [
        and_(_B.c.subject_type == kind, _B.c.subject_id == subject) for kind, subject in subjects
    ]
    query = (
        select(_B)
        .where(_B.c.organization_id == org_id, _B.c.status != "disabled", or_(*matches))
        .order_by(_B.c.id)
    )
    if lock:
        query = query.with_for_update()
    return [budget_of(row) for row in (await conn.execute(query)).mappings()]


async def applicable_to_session(
    conn: AsyncConnection, session_id: str, *, lock: bool = False
) -> list[Budget]:
    """The live budgets a session's spending counts against (see ``session_subjects``), in id
    order, in one query: read fresh each time (a session's agent may be rebound)."""
    s = sessions
    query = (
        select(_B)
        .select_from(_B.join(s, s.c.organization_id == _B.c.organization_id))
        .where(
            s.c.id == session_id,
            _B.c.status != "disabled",
            or_(
                and_(
                    _B.c.subject_type == "session",
                    or_(_B.c.subject_id == s.c.id, _B.c.subject_id == s.c.root_session_id),
                ),
                and_(_B.c.subject_type == "agent", _B.c.subject_id == s.c.agent_id),
                and_(_B.c.subject_type == "user", _B.c.subject_id == s.c.resolved_owner_user_id),
                and_(_B.c.subject_type == "org", _B.c.subject_id == s.c.organization_id),
            ),
        )
        .order_by(_B.c.id)
    )
    if lock:
        query = query.with_for_update(of=_B)
    return [budget_of(row) for row in (await conn.execute(query)).mappings()]


async def any_budget(conn: AsyncConnection, org_id: str) -> bool:
    """Whether the organization has any live budget (most have none: nothing to check)."""
    query = select(_B.c.id).where(_B.c.organization_id == org_id, _B.c.status != "disabled")
    return (await conn.execute(query.limit(1))).first() is not None


async def session_subjects(conn: AsyncConnection, session_id: str) -> tuple[str, list[Subject]]:
    """(organization id, the subjects whose budgets a session's spending counts against): the
    session, its delegation tree's root, its agent, its owner user, its organization."""
    row = (
        await conn.execute(
            select(
                sessions.c.organization_id,
                sessions.c.root_session_id,
                sessions.c.agent_id,
                sessions.c.resolved_owner_user_id,
            ).where(sessions.c.id == session_id)
        )
    ).one()
    org_id, root, agent_id, user_id = row
    found: list[Subject] = [("session", session_id)]
    if root is not None and root != session_id:
        found.append(("session", root))
    if agent_id is not None:
        found.append(("agent", agent_id))
    if user_id is not None:
        found.append(("user", user_id))
    found.append(("org", org_id))
    return org_id, found


async def add_entry(
    conn: AsyncConnection,
    budget: Budget,
    *,
    amount: float,
    meter_source: str,
    created_at: str,
    ref_type: str | None = None,
    ref_id: str | None = None,
    session_id: str | None = None,
    description: str | None = None,
) -> str:
    """Append a ledger entry (positive: a debit; negative: a credit); its id."""
    entry_id = ids.new_id("ledger")
    await conn.execute(
        _L.insert().values(
            id=entry_id,
            budget_id=budget.id,
            organization_id=budget.organization_id,
            amount=amount,
            meter_source=meter_source,
            ref_type=ref_type,
            ref_id=ref_id,
            session_id=session_id,
            description=description,
            created_at=created_at,
        )
    )
    return entry_id


async def ledger(
    conn: AsyncConnection, budget_id: str, *, offset: int = 0, limit: int = 50
) -> tuple[list[dict[str, Any]], int]:
    """A budget's ledger entries, newest first, and how many there are."""
    rows = (
        await conn.execute(
            select(_L)
            .where(_L.c.budget_id == budget_id)
            .order_by(_L.c.created_at.desc(), _L.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).mappings()
    found = [dict(row) for row in rows]
    total = (
        await conn.execute(select(func.count()).select_from(_L).where(_L.c.budget_id == budget_id))
    ).scalar()
    return found, int(total or 0)


async def ledger_sum(conn: AsyncConnection, budget_id: str) -> float:
    """The sum of a budget's ledger since it began (debits minus credits)."""
    total = (
        await conn.execute(select(func.sum(_L.c.amount)).where(_L.c.budget_id == budget_id))
    ).scalar()
    return float(cast(float | None, total) or 0.0)
