"""Capabilities that rewrite a server-side call's result before it is recorded.

A capability with a ``result_filter`` (``capabilities.base.ResultFilter``; e.g.
``tool_output_persistence``, which saves a big output to a file and leaves the model a summary)
sees every successful result of the sessions it is active on. The act phase runs the filters in
the step transaction that writes the call's ``tool.completed``: what a filter writes commits
with the record, never without it, and a re-run of the step after a crash runs the filters
again. The engine knows no capability by name: it asks the turn's active capabilities.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import CapabilityRegistry, ToolContext
from everloop.domain.messages import ToolResultPart
from everloop.engine.context import TurnContext

log = logging.getLogger("everloop.engine")


async def filter_result(
    conn: AsyncConnection,
    registry: CapabilityRegistry,
    context: TurnContext,
    result: ToolResultPart,
) -> ToolResultPart:
    """``result`` as the active capabilities' filters leave it, in their order; an error is
    left alone. A filter that raises is skipped (its writes rolled back, under a savepoint):
    the call keeps the result it had."""
    if result.error is not None or context.runtime is None:
        return result
    for active in context.runtime.capabilities:
        if active.ref not in registry:
            continue
        result_filter = registry.get(active.ref).result_filter
        if result_filter is None:
            continue
        tool_context = ToolContext(
            context.session_id,
            context.org_id,
            context.turn_id,
            result.tool_call_id,
            connection=conn,
            agent_id=context.config.agent_id,
        )
        savepoint = await conn.begin_nested()
        try:
            filtered = await result_filter(result, active.config or {}, tool_context)
        except Exception:  # a filter's bug must not lose the call's result
            await savepoint.rollback()
            log.exception("the result filter of %s raised", active.ref)
            continue
        await savepoint.commit()
        result = filtered
    return result
