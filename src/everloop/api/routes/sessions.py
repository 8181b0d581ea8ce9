"""Routes for sessions, pins and session stats."""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status

from everloop.api.deps import CallerDep, services
from everloop.api.idempotency import IdempotencyKey, once
from everloop.api.schemas import (
    CreateSessionRequest,
    PageResponse,
    SessionResponse,
    SessionStatsResponse,
    UpdateSessionRequest,
)
from everloop.domain.resources import Session, SessionFilter

router = APIRouter(tags=["sessions"])


_NOT_ON_THE_WIRE = ("usage", "tree_usage", "owner_kind", "owner_subject_id", "features")
_SESSION_FIELDS = [f.name for f in fields(Session) if f.name not in _NOT_ON_THE_WIRE]


def session_wire(session: Session) -> dict[str, Any]:
    """A session as the input of ``SessionResponse`` validation. A page validates its list of
    these in one call rather than a model per session (half the Python work); fields are read
    shallowly (``dataclasses.asdict`` deep-copies every JSON value)."""
    values = {name: getattr(session, name) for name in _SESSION_FIELDS}
    usage = session.usage
    values["usage"] = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_creation_tokens": usage.cache_creation_tokens,
    }
    tree = session.tree_usage
    values["tree_usage"] = {
        "input_tokens": tree.input_tokens,
        "output_tokens": tree.output_tokens,
        "cache_read_tokens": tree.cache_read_tokens,
        "cache_creation_tokens": tree.cache_creation_tokens,
    }
    owner = (
        {
            "id": session.owner_principal_id,
            "kind": session.owner_kind.value,
            "subject_id": session.owner_subject_id,
        }
        if session.owner_kind
        else None
    )
    values["owner"] = owner
    # A user principal is its own effective owner; other kinds resolve upward (later).
    values["effective_owner"] = owner if owner and owner["kind"] == "user" else None
    values["status"] = session.status.value
    values["features"] = list(session.features)
    return values


def session_out(session: Session) -> SessionResponse:
    return SessionResponse.model_validate(session_wire(session))


@router.post("/v1/sessions", response_model=SessionResponse, status_code=status.HTTP_201_CREATED)
async def create_session(
    request: Request,
    caller: CallerDep,
    body: CreateSessionRequest,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create a session of an agent (or harness), ready for messages. With an ``Idempotency-Key``, a
    retry returns the first answer instead of creating another."""

    async def create() -> SessionResponse:
        fields = body.model_dump(exclude_unset=True)
        return session_out(await services(request).sessions.create(caller, fields))

    return await once(request, caller, idempotency_key, 201, create)


@router.get("/v1/sessions", response_model=PageResponse[SessionResponse])
async def list_sessions(
    request: Request,
    caller: CallerDep,
    agent_id: Annotated[str | None, Query(max_length=100)] = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
    tags: Annotated[
        list[Annotated[str, Query(max_length=100)]] | None, Query(max_length=20)
    ] = None,
    status_: Annotated[
        Literal["started", "active", "idle", "waitingfortoolresults", "paused"] | None,
        Query(alias="status"),
    ] = None,
    pinned: bool | None = None,
    parent_session_id: Annotated[
        str | None,
        Query(max_length=100, description="Only the subagents this session spawned."),
    ] = None,
    include_subagents: Annotated[
        bool,
        Query(description="Also list subagents (sessions with a parent), hidden by default."),
    ] = False,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The organization's sessions, newest first. Subagents (sessions with a
    ``parent_session_id``) are hidden unless ``include_subagents=true``, or
    ``parent_session_id`` asks for the children of one session; ``total`` counts what the
    filters select."""
    flt = SessionFilter(
        agent_id=agent_id,
        search=search,
        tags=tuple(tags or ()),
        status=status_,
        pinned=pinned,
        parent_session_id=parent_session_id,
        include_subagents=include_subagents,
    )
    found, total = await services(request).sessions.list(caller, flt, offset=offset, limit=limit)
    # Validated (once, as the whole page) and serialized by the response model.
    return {
        "data": [session_wire(s) for s in found],
        "total": total,
        "offset": offset,
        "limit": limit,
    }


@router.get("/v1/sessions/stats", response_model=SessionStatsResponse)
async def session_stats(request: Request, caller: CallerDep) -> SessionStatsResponse:
    """How many of the organization's sessions are in each status. Subagents count too (unlike
    in the default listing): they run turns like any session, and an ``active`` count that
    left them out would hide most of the work of a delegating agent."""
    counts = await services(request).sessions.stats(caller)
    return SessionStatsResponse(
        total=counts["total"],
        started=counts["started"],
        active=counts["active"],
        idle=counts["idle"],
        waiting_for_tool_results=counts["waitingfortoolresults"],
        paused=counts["paused"],
    )


@router.get("/v1/sessions/{session_id}", response_model=SessionResponse)
async def get_session(request: Request, caller: CallerDep, session_id: str) -> SessionResponse:
    """Get one session by id, with its status and usage."""
    return session_out(await services(request).sessions.get(caller, session_id))


@router.patch("/v1/sessions/{session_id}", response_model=SessionResponse)
async def update_session(
    request: Request, caller: CallerDep, session_id: str, body: UpdateSessionRequest
) -> SessionResponse:
    """Change a session's title, tags or settings; fields not sent stay as they are."""
    updated = await services(request).sessions.update(
        caller, session_id, body.model_dump(exclude_unset=True)
    )
    return session_out(updated)


@router.delete("/v1/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_session(request: Request, caller: CallerDep, session_id: str) -> Response:
    """Delete a session with its messages, events and storage."""
    await services(request).sessions.delete(caller, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/v1/sessions/{session_id}/pin", status_code=status.HTTP_204_NO_CONTENT)
async def pin_session(request: Request, caller: CallerDep, session_id: str) -> Response:
    """Pin a session (pinned sessions list first)."""
    await services(request).sessions.set_pinned(caller, session_id, True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/v1/sessions/{session_id}/pin", status_code=status.HTTP_204_NO_CONTENT)
async def unpin_session(request: Request, caller: CallerDep, session_id: str) -> Response:
    """Unpin a session."""
    await services(request).sessions.set_pinned(caller, session_id, False)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
