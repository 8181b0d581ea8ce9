"""Loading the configuration layers of a RuntimeAgent: harness chains, agents and their captured
versions, sessions, and a turn's message controls.

Rows become :class:`~everloop.domain.runtime_agent.Layer` values; assembling them (and refusing
a chain with a cycle) is the pure ``domain.runtime_agent``'s job, so a bad chain loads as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.runtime_agent import MAX_HARNESS_DEPTH, Controls, Layer
from everloop.store.tables import agent_versions, agents, events, harnesses, turns


def harness_layer(row: Mapping[str, Any]) -> Layer:
    return Layer(
        kind="harness",
        id=row["id"],
        parent_id=row.get("parent_harness_id"),
        system_prompt=row.get("system_prompt"),
        capabilities=row.get("capabilities") or (),
        initial_files=row.get("initial_files") or (),
        network_access=row.get("network_access"),
        mcp_servers=row.get("mcp_servers") or {},
        model_id=row.get("default_model_id"),
        parallel_tool_calls=row.get("parallel_tool_calls"),
    )


def agent_layer(config: Mapping[str, Any], agent_id: str | None = None) -> Layer:
    """An agent row, or a version's ``authored_config`` (the same keys)."""
    return Layer(
        kind="agent",
        id=agent_id or config.get("id"),
        system_prompt=config.get("system_prompt"),
        capabilities=config.get("capabilities") or (),
        tools=config.get("tools") or (),
        initial_files=config.get("initial_files") or (),
        network_access=config.get("network_access"),
        mcp_servers=config.get("mcp_servers") or {},
        model_id=config.get("default_model_id"),
        max_iterations=config.get("max_iterations"),
        parallel_tool_calls=config.get("parallel_tool_calls"),
    )


def session_layer(row: Mapping[str, Any]) -> Layer:
    return Layer(
        kind="session",
        id=row.get("id"),
        system_prompt=row.get("system_prompt"),
        capabilities=row.get("capabilities") or (),
        tools=row.get("tools") or (),
        initial_files=row.get("initial_files") or (),
        hints=row.get("hints"),
        network_access=row.get("network_access"),
        mcp_servers=row.get("mcp_servers") or {},
        model_id=row.get("model_id"),
        max_iterations=row.get("max_iterations"),
        parallel_tool_calls=row.get("parallel_tool_calls"),
        locale=row.get("locale"),
        allowed_capabilities=row.get("capability_allowlist"),
    )


# Built once: a turn's start reads these (building a statement and its cache key costs more
# than the query).
_HARNESS = select(harnesses).where(
    harnesses.c.id == bindparam("harness_id"), harnesses.c.organization_id == bindparam("org_id")
)


async def load_harness_chain(
    conn: AsyncConnection,
    org_id: str,
    harness_id: str | None,
    *,
    first: Mapping[str, Any] | None = None,
) -> tuple[Layer, ...]:
    """``harness_id`` and its parents, root first. Stops after a repeated harness or one past
    the depth limit, so the assembly sees (and names) the cycle or the depth; a missing parent
    ends the chain. ``first``, the row of ``harness_id`` (of this org) when the caller has just
    read it, saves reading it again; a caller that needs only some layer fields may pass just
    those columns (a listing's features: id, parent_harness_id, capabilities)."""
    chain: list[Layer] = []
    seen: set[str] = set()
    current = harness_id
    row: Any = None
    while current is not None and len(chain) <= MAX_HARNESS_DEPTH:
        if first is not None and current == harness_id and not chain:
            row = first
        else:
            found = (
                await conn.execute(_HARNESS, {"harness_id": current, "org_id": org_id})
            ).first()
            row = dict(found._mapping) if found is not None else None
        if row is None:
            break
        chain.append(harness_layer(row))
        if current in seen:
            break
        seen.add(current)
        current = row.get("parent_harness_id")
    chain.reverse()
    if row is None and chain:
        # The root names a parent that is not there (another org's, or a dangling id).
        chain[0] = replace(chain[0], parent_id=None)
    return tuple(chain)


async def harness_parents(conn: AsyncConnection, org_id: str) -> dict[str, str | None]:
    """Every harness of the org (archived ones too) with its parent id."""
    rows = await conn.execute(
        select(harnesses.c.id, harnesses.c.parent_harness_id).where(
            harnesses.c.organization_id == org_id
        )
    )
    return {row.id: row.parent_harness_id for row in rows}


async def load_agent_layer(
    conn: AsyncConnection,
    org_id: str,
    agent_id: str | None,
    agent_version_id: str | None,
    *,
    agent_row: Mapping[str, Any] | None = None,
) -> Layer | None:
    """The captured version's config when the session has one, else the agent as it is now
    (``agent_row``, the agent's row when the caller has just read it, saves reading it)."""
    if agent_version_id is not None:
        row = (
            await conn.execute(
                select(agent_versions.c.authored_config).where(
                    agent_versions.c.id == agent_version_id,
                    agent_versions.c.organization_id == org_id,
                )
            )
        ).first()
        if row is not None:
            return agent_layer(row.authored_config, agent_id)
    if agent_id is None:
        return None
    if agent_row is not None:
        return agent_layer(agent_row)
    found = (
        await conn.execute(
            select(agents).where(agents.c.id == agent_id, agents.c.organization_id == org_id)
        )
    ).first()
    return agent_layer(dict(found._mapping)) if found is not None else None


_TURN_INPUT_DATA = (
    select(events.c.data)
    .select_from(
        events.join(
            turns,
            and_(
                turns.c.session_id == events.c.session_id,
                turns.c.input_sequence == events.c.sequence,
            ),
        )
    )
    .where(turns.c.id == bindparam("turn_id"), events.c.type == "input.message")
    .limit(1)
)


async def turn_controls(conn: AsyncConnection, turn_id: str) -> Controls:
    """The ``controls`` of the message that started ``turn_id`` (stored in its input event)."""
    # By the input event's sequence (one index lookup), not by scanning the session's events.
    data = await conn.scalar(_TURN_INPUT_DATA, {"turn_id": turn_id})
    message = data.get("message") if isinstance(data, dict) else None
    controls = message.get("controls") if isinstance(message, dict) else None
    return Controls.from_json(controls if isinstance(controls, dict) else None)
