"""Budgets and their ledger (tables ``budgets``, ``budget_ledger``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.budgets import Budget
from everloop.store import direct
from everloop.store.tables import budget_ledger, budgets

_B = budgets
_L = budget_ledger


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


# The budgets a session's spending counts against, by one indexed look-up per subject: the
# hot path (before every model call, and with every generation), so raw SQL (``store.direct``).
_COLUMNS = ", ".join(f'b."{name}"' for name in Budget.__dataclass_fields__)  # "limit" is a keyword
_SUBJECT = (
    "SELECT x.id FROM budgets AS x JOIN sessions AS s ON s.id = ? "
    "AND x.organization_id = s.organization_id AND x.subject_type = '{kind}' "
    "AND x.subject_id = s.{column}"
)
# One index look-up (organization, subject type, subject id) per subject, so the cost does not
# grow with the organization's other budgets.
_APPLICABLE = (
    f"SELECT {_COLUMNS} FROM budgets AS b WHERE b.id IN ("
    + " UNION ALL ".join(
        _SUBJECT.format(kind=kind, column=column)
        for kind, column in (
            ("session", "id"),
            ("agent", "agent_id"),
            ("user", "resolved_owner_user_id"),
            ("org", "organization_id"),
        )
    )
    + " UNION ALL "
    + _SUBJECT.format(kind="session", column="root_session_id")
    + " AND s.root_session_id <> s.id"
    + ") AND b.status <> 'disabled' ORDER BY b.id"
)


async def applicable_to_session(
    conn: AsyncConnection, session_id: str, *, lock: bool = False
) -> list[Budget]:
    """The live budgets a session's spending counts against (its own, its tree root's, its
    agent's, its owner user's, its organization's), in id order, in one query: read fresh each
    time (a session's agent may be rebound)."""
    raw = direct.connection(conn)
    sql = _APPLICABLE
    if lock and direct.is_postgresql(raw):
        sql += " FOR UPDATE OF b"
    rows = await direct.all_rows(conn, raw, sql, (session_id,) * 5)
    names = list(Budget.__dataclass_fields__)
    found = []
    for row in rows:
        values = dict(zip(names, row, strict=True))
        values["period"] = direct.json_result(raw, values["period"])
        values["metadata"] = direct.json_result(raw, values["metadata"])
        found.append(budget_of(values))
    return found


async def charge_entries(
    conn: AsyncConnection,
    charged: Sequence[tuple[Budget, float]],
    *,
    ref_id: str,
    session_id: str,
    created_at: str,
) -> None:
    """Record one generation's debit on each budget: the ledger entries in one statement, the
    budgets' new balance, status and warning mark in another."""
    raw = direct.connection(conn)
    rows = ", ".join(["(?, ?, ?, ?, 'llm_tokens', 'llm_generation', ?, ?, NULL, ?)"] * len(charged))
    await direct.execute(
        conn,
        raw,
        "INSERT INTO budget_ledger (id, budget_id, organization_id, amount, meter_source, "
        f"ref_type, ref_id, session_id, description, created_at) VALUES {rows}",
        [
            value
            for budget, amount in charged
            for value in (
                ids.new_id("ledger"),
                budget.id,
                budget.organization_id,
                amount,
                ref_id,
                session_id,
                created_at,
            )
        ],
    )
    cases = " ".join(["WHEN ? THEN ?"] * len(charged))
    marks = ", ".join(["?"] * len(charged))
    params: list[Any] = []
    for column in ("balance", "status", "warned_period"):
        params.extend(v for budget, _ in charged for v in (budget.id, getattr(budget, column)))
    params.append(created_at)
    params.extend(budget.id for budget, _ in charged)
    await direct.execute(
        conn,
        raw,
        f"UPDATE budgets SET balance = CASE id {cases} END, status = CASE id {cases} END, "
        f"warned_period = CASE id {cases} END, updated_at = ? WHERE id IN ({marks})",
        params,
    )


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
