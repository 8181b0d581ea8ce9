"""Opt-in debug figures (``EVERLOOP_DEBUG_COUNTERS=1``): not in the OpenAPI document.

``GET /api/v1/debug/counters`` answers the counters of this process since it started, for
benchmarks and diagnosis; without the setting the route does not exist (404).

- ``sse``: the SSE streams (``services.event_feed.Counters``): ``tail_reads`` (reads of the
  shared live tails, one per wake-up or poll of a streamed session, whatever the number of
  streams), ``tail_reads_empty``, ``catchup_reads`` (reads by one stream from its own cursor:
  on joining behind the tail, or after its buffer overflowed), ``events_read``,
  ``live_deliveries``, ``catchup_deliveries``, ``overflows``, ``subscribed``, and the current
  ``feeds`` and ``subscribers``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from everloop.api.deps import CallerDep, services

router = APIRouter(include_in_schema=False)


@router.get("/v1/debug/counters")
async def counters(request: Request, caller: CallerDep) -> dict[str, dict[str, int]]:
    """Internal counters of the event fan-out (opt-in with the ``debug_counters`` setting)."""
    return {"sse": services(request).fanout.counters()}
