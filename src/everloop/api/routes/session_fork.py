"""Routes for forking a session and exporting it as JSON lines (``services.session_fork``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from everloop.api.deps import CallerDep, services
from everloop.api.routes.sessions import session_out
from everloop.api.schemas import (
    EventResponse,
    ForkSessionRequest,
    MessageResponse,
    SessionResponse,
)
from everloop.domain.resources import Session

router = APIRouter(tags=["sessions"])

EXPORT_MEDIA_TYPE = "application/x-ndjson"
_WIRE: dict[str, type[BaseModel]] = {"message": MessageResponse, "event": EventResponse}


def _line(kind: str, data: dict[str, Any]) -> bytes:
    return (json.dumps({"kind": kind, "data": data}, separators=(",", ":")) + "\n").encode()


async def export_lines(
    session: Session, records: AsyncIterator[tuple[str, dict[str, Any]]]
) -> AsyncIterator[bytes]:
    """The lines of an export: ``{"kind": "session", "data": <session>}``, then one
    ``{"kind": "message", "data": <message>}`` per message and one
    ``{"kind": "event", "data": <event>}`` per event, each as its own route gives it."""
    yield _line("session", session_out(session).model_dump(mode="json", by_alias=True))
    async for kind, data in records:
        yield _line(kind, _WIRE[kind].model_validate(data).model_dump(mode="json"))


@router.get(
    "/v1/sessions/{session_id}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "JSON lines: the session, its messages, its events",
            "content": {EXPORT_MEDIA_TYPE: {"schema": {"type": "string"}}},
        }
    },
)
async def export_session(request: Request, caller: CallerDep, session_id: str) -> StreamingResponse:
    """Export a session as JSON lines (``application/x-ndjson``), one JSON object a line, each
    ``{"kind": ..., "data": ...}``: first the session (``kind: "session"``, as ``GET
    /v1/sessions/{id}`` gives it), then its messages oldest first (``kind: "message"``, as
    ``GET .../messages`` gives them), then its events in sequence order (``kind: "event"``, as
    ``GET .../events`` gives them). The export is the session as it was when the request
    arrived (events appended meanwhile are left out) and is streamed: the log is read a page at
    a time, so a session of any length exports in constant memory."""
    session, records = await services(request).session_fork.export(caller, session_id)
    return StreamingResponse(
        export_lines(session, records),
        media_type=EXPORT_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{session.id}.jsonl"'},
    )


@router.post(
    "/v1/sessions/{session_id}/fork",
    response_model=SessionResponse,
    status_code=status.HTTP_201_CREATED,
)
async def fork_session(
    request: Request,
    caller: CallerDep,
    session_id: str,
    body: Annotated[ForkSessionRequest | None, Body()] = None,
) -> SessionResponse:
    """Fork a session into an independent copy: a new idle session with the same agent,
    harness and configuration, owned by the caller, holding the parent's events up to
    ``at_sequence`` (default: all; whole turns only, a 422 names the nearest valid cut) and
    deep copies of its files, key-values, secrets and SQL databases; schedules, leases, tasks,
    subagents and running work are not copied, and usage starts at zero. The fork names its
    parent in ``forked_from_session_id`` and ``forked_from_sequence``. A 409 while a turn is in
    progress, unless ``at_sequence`` comes before it."""
    fields = body or ForkSessionRequest()
    forked = await services(request).session_fork.fork(
        caller,
        session_id,
        at_sequence=fields.at_sequence,
        title=fields.title,
        tags=fields.tags,
    )
    return session_out(forked)
