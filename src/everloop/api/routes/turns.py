"""Routes for messages, events (JSON and SSE) and cancelling a turn."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from collections.abc import Sequence as Seq
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request, Response, status
from sse_starlette import EventSourceResponse, ServerSentEvent

from everloop.api.deps import CallerDep, KnownQuery, services
from everloop.api.idempotency import IdempotencyKey, once
from everloop.api.json_values import INT64_MAX
from everloop.api.schemas import (
    CancelResponse,
    CreateMessageRequest,
    EventResponse,
    ListResponse,
    MessageResponse,
    PageResponse,
    SubmitToolResultsRequest,
    SubmitToolResultsResponse,
)
from everloop.services.auth import Caller
from everloop.services.event_listing import EventListing
from everloop.services.turns import StreamFrame

router = APIRouter(tags=["messages and events"])

TypeList = Annotated[list[Annotated[str, Query(max_length=64)]] | None, Query(max_length=40)]
# Event sequences are signed 64-bit integers in the store: a larger one is a 422, not a 500.
Sequence = Annotated[int | None, Query(ge=0, le=INT64_MAX)]


@router.post(
    "/v1/sessions/{session_id}/messages",
    response_model=MessageResponse,
    status_code=status.HTTP_201_CREATED,
)
async def create_message(
    request: Request,
    caller: CallerDep,
    session_id: str,
    body: CreateMessageRequest,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Post a user message to the session; it starts a turn, or is queued behind the running one.
    With an ``Idempotency-Key``, a retry posts once."""
    return await once(
        request,
        caller,
        idempotency_key,
        201,
        lambda: post_message_response(request, caller, session_id, body),
    )


async def post_message_response(
    request: Request, caller: Caller, session_id: str, body: CreateMessageRequest
) -> MessageResponse:
    """Post a user message as ``caller`` (here and on a channel, ``routes/channels.py``)."""
    posted = await services(request).turns.post_message(
        caller,
        session_id,
        [part.model_dump(exclude_none=True) for part in body.message.content],
        controls=body.controls.model_dump(exclude_none=True) if body.controls else None,
        metadata=body.metadata,
        tags=body.tags,
    )
    message = posted.message
    content = [part for part in _wire_content(message)]
    return MessageResponse(
        id=message.id,
        role="user",
        content=content,
        created_at=message.created_at or "",
        controls=body.controls.model_dump(exclude_none=True) if body.controls else None,
        metadata=body.metadata,
        sequence=posted.sequence,
        turn_id=posted.turn_id,
    )


def _wire_content(message: object) -> list[dict[str, object]]:
    from everloop.domain.messages import Message, message_to_json

    assert isinstance(message, Message)
    content = message_to_json(message)["content"]
    assert isinstance(content, list)
    return [dict(part) for part in content if isinstance(part, dict)]


@router.get("/v1/sessions/{session_id}/messages", response_model=PageResponse[MessageResponse])
async def list_messages(
    request: Request,
    caller: CallerDep,
    session_id: str,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX, description="Messages to skip.")] = 0,
    limit: Annotated[
        int | None, Query(ge=1, le=1000, description="At most this many; all when absent.")
    ] = None,
) -> PageResponse[MessageResponse]:
    """The session's messages, oldest first, each with the turn it belongs to. Without ``limit``
    every message (what ``everruns-sdk``'s ``messages.list`` reads); ``total`` counts them all."""
    found, total = await services(request).turns.list_messages(
        caller, session_id, offset=offset, limit=limit
    )
    return PageResponse(
        data=[MessageResponse.model_validate(m) for m in found],
        total=total,
        offset=offset,
        limit=limit if limit is not None else len(found),
    )


@router.get(
    "/v1/sessions/{session_id}/events",
    response_model=ListResponse[EventResponse],
    dependencies=[KnownQuery],
)
async def list_events(
    request: Request,
    caller: CallerDep,
    session_id: str,
    since_id: Annotated[
        str | None, Query(max_length=100, description="Events after this event id.")
    ] = None,
    after_sequence: Sequence = None,
    before_sequence: Sequence = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=1000, description="At most this many; without a cursor, the last N."),
    ] = None,
    types: TypeList = None,
    exclude: TypeList = None,
    turn_id: Annotated[str | None, Query(max_length=100)] = None,
    order_desc: bool = False,
    around: Annotated[
        str | None,
        Query(max_length=100, description="Anchor event id: a window of events around it."),
    ] = None,
    window: Annotated[
        int | None,
        Query(ge=0, le=500, description="Events on each side of ``around`` (default 50)."),
    ] = None,
    from_ts: Annotated[
        str | None, Query(max_length=64, description="Events at or after (RFC 3339).")
    ] = None,
    to_ts: Annotated[
        str | None, Query(max_length=64, description="Events at or before (RFC 3339).")
    ] = None,
    trace_id: Annotated[str | None, Query(max_length=100)] = None,
    exec_id: Annotated[str | None, Query(max_length=100)] = None,
    tags: TypeList = None,
    tool_name: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=500, description="Full-text search.")
    ] = None,
) -> ListResponse[EventResponse]:
    """List the session's events, in sequence order (``order_desc`` for newest first).

    Every filter narrows, all compose, and all run in the database:

    - position: ``since_id`` / ``after_sequence`` (after), ``before_sequence`` (before),
      ``limit`` (at most N; without a cursor the last N, still oldest first);
      ``around`` + ``window``: up to ``window`` (default 50, at most 500) matching events
      before the anchor event, the anchor if it matches, and up to ``window`` after; it replaces
      the cursors and ``limit`` (combining them is a 422). An unknown ``since_id`` or
      ``around`` is a 404.
    - ``types`` / ``exclude``: event types; ``from_ts`` / ``to_ts``: inclusive bounds on the
      event's ``ts`` (RFC 3339 with an offset, else 422).
    - ``turn_id``; ``trace_id``: ``context.trace_id``, which in everloop (as in Everruns) is the
      turn id; ``exec_id``: ``context.exec_id``, an Everruns atom-execution id: everloop's
      turns run as one durable workflow without atom executions, so its events carry none and
      an ``exec_id`` filter matches no event.
    - ``tags``: events with any of these tags (an ``input.message`` event carries its message's
      ``tags``; no other event has tags).
    - ``tool_name``: events about a call of that tool: ``tool.started``, ``tool.completed``,
      ``transcript.repaired``, ``act.started``, ``tool.call_requested``, and ``llm.generation``
      when the model called it.
    - ``q``: full-text search over every string in the event's ``data`` (message text, tool
      names, arguments, results, errors; an ``llm.generation`` holds its prompt too): each word
      and each "quoted phrase" must occur, case-insensitive whole words, no stemming. Delta
      events are not searched (their ``*.completed`` event holds the whole text).

    An unknown query parameter is a 422 naming it."""
    found = await services(request).turns.list_events(
        caller,
        session_id,
        EventListing(
            since_id=since_id,
            after_sequence=after_sequence,
            before_sequence=before_sequence,
            limit=limit,
            types=types or (),
            exclude=exclude or (),
            turn_id=turn_id,
            newest_first=order_desc,
            around=around,
            window=window,
            from_ts=from_ts,
            to_ts=to_ts,
            trace_id=trace_id,
            exec_id=exec_id,
            tags=tags or (),
            tool_name=tool_name,
            q=q,
        ),
    )
    return ListResponse(
        data=[EventResponse.model_validate(e.to_json()) for e in found], total=len(found)
    )


@router.get(
    "/v1/sessions/{session_id}/sse",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
    dependencies=[KnownQuery],
)
async def stream_events(
    request: Request,
    caller: CallerDep,
    session_id: str,
    since_id: Annotated[str | None, Query(max_length=100)] = None,
    after_sequence: Sequence = None,
    types: TypeList = None,
    exclude: TypeList = None,
    last_event_id: Annotated[str | None, Header(max_length=100)] = None,
) -> EventSourceResponse:
    """Stream the session's events as server-sent events, live; resumes after ``since_id``,
    ``after_sequence`` or the ``Last-Event-ID`` header without losing or repeating any.
    An unknown query parameter is a 422 naming it."""
    return await sse_response(
        request,
        caller,
        session_id,
        since_id=since_id or last_event_id,
        after_sequence=after_sequence,
        types=types or (),
        exclude=exclude or (),
    )


async def sse_response(
    request: Request,
    caller: Caller,
    session_id: str,
    *,
    since_id: str | None,
    after_sequence: int | None,
    types: Seq[str],
    exclude: Seq[str],
) -> EventSourceResponse:
    """A session's event stream as SSE, for ``caller`` (here and on a channel)."""
    svc = services(request)
    settings = svc.settings
    stopping = anyio.Event()
    frames = await svc.turns.stream(
        caller,
        session_id,
        since_id=since_id,
        after_sequence=after_sequence,
        types=types,
        exclude=exclude,
        cycle_seconds=settings.sse_cycle_seconds,
        stopping=stopping,
    )
    return EventSourceResponse(
        _sse(frames),
        ping=settings.sse_heartbeat_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        shutdown_event=stopping,
        shutdown_grace_period=1.0,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(frames: AsyncIterator[StreamFrame]) -> AsyncIterator[ServerSentEvent | bytes]:
    yield ServerSentEvent(event="connected", data=json.dumps({"status": "connected"}))
    async for frame in frames:
        if frame.kind == "disconnecting":
            yield ServerSentEvent(
                event="disconnecting",
                data=json.dumps({"reason": frame.reason, "retry_ms": frame.retry_ms}),
                retry=frame.retry_ms,
            )
            return
        # A batch of events goes out in one write. Ids and types have no line breaks and the
        # data is compact JSON (line breaks in strings are escaped): one line each, as
        # ``ServerSentEvent.encode`` would write them.
        yield "".join(
            f"id: {d.event.id}\r\nevent: {d.event.type}\r\ndata: {d.data}\r\n\r\n"
            for d in frame.events
        ).encode()


@router.post(
    "/v1/sessions/{session_id}/tool-results",
    response_model=SubmitToolResultsResponse,
)
async def submit_tool_results(
    request: Request,
    caller: CallerDep,
    session_id: str,
    body: SubmitToolResultsRequest,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Results of client-side tool calls the session's turn is waiting for."""

    async def submit() -> SubmitToolResultsResponse:
        accepted, status_after = await services(request).turns.submit_tool_results(
            caller, session_id, [item.model_dump() for item in body.tool_results]
        )
        return SubmitToolResultsResponse.model_validate(
            {"accepted": accepted, "status": status_after}
        )

    return await once(request, caller, idempotency_key, 200, submit)


@router.post("/v1/sessions/{session_id}/cancel", response_model=CancelResponse)
async def cancel_turn(request: Request, caller: CallerDep, session_id: str) -> CancelResponse:
    """Cancel the session's running turn, if any (``no_op`` when none runs)."""
    turn_id = await services(request).turns.cancel(caller, session_id)
    if turn_id is None:
        return CancelResponse(status="no_op")
    return CancelResponse(status="cancelled", turn_id=turn_id)
