"""The Agent Execution API: one agent's sessions, under ``/v1/channels/{channel_id}``.

``everruns-sdk``'s ``AgentClient`` is the client of these routes. A caller authenticates with an
agent key, a runtime token, or (where the channel allows it) a member's personal access token,
and sees only its own sessions of the channel's agent (``services/channel_auth.py``,
``services/channels.py``). Posting a message, cancelling, the event log and its SSE stream are
the management API's own operations on those sessions (``routes/turns.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sse_starlette import EventSourceResponse

from everloop.api.channel_schemas import (
    AgentCardResponse,
    ChannelSessionPage,
    ChannelSessionResponse,
    CreateChannelSessionRequest,
    RuntimeAuthResponse,
)
from everloop.api.deps import services
from everloop.api.human_input_schemas import (
    AnswerSetIn,
    QuestionAnswersRequest,
    QuestionAnswersResponse,
    ToolApprovalsRequest,
    ToolApprovalsResponse,
)
from everloop.api.idempotency import IdempotencyKey, once
from everloop.api.routes.sessions import session_wire
from everloop.api.routes.turns import (
    Sequence,
    TypeList,
    post_message_response,
    sse_response,
)
from everloop.api.schemas import (
    CancelResponse,
    CreateMessageRequest,
    EventResponse,
    ListResponse,
    MessageResponse,
)
from everloop.domain.resources import Session
from everloop.services.channel_auth import ChannelCaller
from everloop.services.event_listing import EventListing

router = APIRouter(tags=["agent execution"])

AGENT_BEARER = HTTPBearer(
    scheme_name="agentAuth",
    bearerFormat="evr_ak_... | evr_rt_... | evr_pat_...",
    description=(
        "An agent key (`evr_ak_...`), a runtime token (`evr_rt_...`), or a member's personal "
        "access token where the channel allows members."
    ),
    auto_error=False,
)


async def channel_call(
    request: Request,
    channel_id: str,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(AGENT_BEARER)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    end_user: Annotated[
        str | None,
        Header(
            alias="End-User",
            max_length=200,
            description="Act for this end user of your application (a key with `end_user`).",
        ),
    ] = None,
) -> ChannelCaller:
    """The authenticated caller of a channel route."""
    client = request.client.host if request.client else "unknown"
    return await services(request).channel_auth.authenticate(
        authorization, channel_id, end_user, client
    )


CallDep = Annotated[ChannelCaller, Depends(channel_call)]
BASE = "/v1/channels/{channel_id}"


def _session_out(
    call: ChannelCaller, session: Session, pending: dict[str, Any] | None = None
) -> ChannelSessionResponse:
    values: dict[str, Any] = session_wire(session)
    values["end_user"] = call.end_user
    if pending is not None:
        values.update(pending)
    return ChannelSessionResponse.model_validate(values)


@router.get(BASE, response_model=AgentCardResponse)
async def agent_card(request: Request, call: CallDep) -> AgentCardResponse:
    """The agent card: the agent's name and description, the input it accepts, conversation
    starters, and the credentials the channel accepts."""
    return AgentCardResponse.model_validate(await services(request).channels.card(call))


@router.post(
    f"{BASE}/sessions",
    response_model=ChannelSessionResponse,
    status_code=status.HTTP_201_CREATED,
)
async def create_channel_session(
    request: Request,
    call: CallDep,
    body: CreateChannelSessionRequest,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Start a session of the channel's agent, owned by the caller (the end user with
    ``End-User``). With an ``Idempotency-Key``, a retry returns the first answer."""

    async def create() -> ChannelSessionResponse:
        session = await services(request).channels.create_session(call, body.title)
        return _session_out(call, session)

    return await once(request, call.caller, idempotency_key, 201, create)


@router.get(f"{BASE}/sessions", response_model=ChannelSessionPage)
async def list_channel_sessions(
    request: Request,
    call: CallDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    page_token: Annotated[str | None, Query(max_length=500)] = None,
) -> ChannelSessionPage:
    """The caller's sessions of the agent, most recently active first; another caller's
    (another end user's) are never listed. Page on with ``page_token``."""
    page = await services(request).channels.list_sessions(call, limit=limit, page_token=page_token)
    return ChannelSessionPage(
        data=[_session_out(call, s) for s in page.sessions],
        next_page_token=page.next_page_token,
    )


@router.get(f"{BASE}/sessions/{{session_id}}", response_model=ChannelSessionResponse)
async def get_channel_session(
    request: Request, call: CallDep, session_id: str
) -> ChannelSessionResponse:
    """One of the caller's sessions, with its status and what waits for the caller: the
    ``ask_user`` questions not answered yet (``pending_questions``) and the tool calls waiting
    for approval (``pending_approvals``)."""
    hub = services(request)
    session = await hub.channels.own(call, session_id)
    pending = await hub.human_input.pending(call.caller.organization_id, session_id)
    return _session_out(call, session, pending)


@router.post(
    f"{BASE}/sessions/{{session_id}}/question-answers", response_model=QuestionAnswersResponse
)
async def answer_channel_questions(
    request: Request,
    call: CallDep,
    session_id: str,
    body: QuestionAnswersRequest | list[AnswerSetIn],
) -> QuestionAnswersResponse:
    """Answer the agent's ``ask_user`` questions (the body of ``POST
    /v1/sessions/{id}/question-answers``); the turn goes on with the answers. 409 when the
    session waits for no answers or the set was answered already."""
    hub = services(request)
    await hub.channels.own(call, session_id)
    payload = [s.model_dump() for s in body] if isinstance(body, list) else body.service_body()
    done = await hub.human_input.answer_questions(call.caller.organization_id, session_id, payload)
    return QuestionAnswersResponse.model_validate(done)


@router.post(f"{BASE}/sessions/{{session_id}}/tool-approvals", response_model=ToolApprovalsResponse)
async def decide_channel_tool_approvals(
    request: Request, call: CallDep, session_id: str, body: ToolApprovalsRequest
) -> ToolApprovalsResponse:
    """Approve or deny tool calls held back for approval (the body of ``POST
    /v1/sessions/{id}/tool-approvals``): an approved call runs once, a denied one does not
    and the model sees the reason. Deciding a call twice is a 409."""
    hub = services(request)
    await hub.channels.own(call, session_id)
    payload = {"decisions": [d.model_dump() for d in body.decisions]}
    done = await hub.human_input.decide_approvals(call.caller.organization_id, session_id, payload)
    return ToolApprovalsResponse.model_validate(done)


@router.post(
    f"{BASE}/sessions/{{session_id}}/messages",
    response_model=MessageResponse,
    status_code=status.HTTP_201_CREATED,
)
async def create_channel_message(
    request: Request,
    call: CallDep,
    session_id: str,
    body: CreateMessageRequest,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Send a user message: it starts a turn, or is queued behind the running one. With an
    ``Idempotency-Key``, a retry posts once."""

    async def post() -> MessageResponse:
        await services(request).channels.own(call, session_id)
        return await post_message_response(request, call.caller, session_id, body)

    return await once(request, call.caller, idempotency_key, 201, post)


@router.post(f"{BASE}/sessions/{{session_id}}/cancel", response_model=CancelResponse)
async def cancel_channel_turn(request: Request, call: CallDep, session_id: str) -> CancelResponse:
    """Cancel the session's running turn, if any (``no_op`` when none runs)."""
    svc = services(request)
    await svc.channels.own(call, session_id)
    turn_id = await svc.turns.cancel(call.caller, session_id)
    if turn_id is None:
        return CancelResponse(status="no_op")
    return CancelResponse(status="cancelled", turn_id=turn_id)


@router.get(f"{BASE}/sessions/{{session_id}}/events", response_model=ListResponse[EventResponse])
async def list_channel_events(
    request: Request,
    call: CallDep,
    session_id: str,
    after_sequence: Sequence = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> ListResponse[EventResponse]:
    """The session's events, oldest first; page forward with ``after_sequence`` (exclusive)."""
    svc = services(request)
    await svc.channels.own(call, session_id)
    listing = EventListing(
        after_sequence=after_sequence if after_sequence is not None else 0, limit=limit
    )
    found = await svc.turns.list_events(call.caller, session_id, listing)
    return ListResponse(
        data=[EventResponse.model_validate(e.to_json()) for e in found], total=len(found)
    )


@router.get(
    f"{BASE}/sessions/{{session_id}}/sse",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
async def stream_channel_events(
    request: Request,
    call: CallDep,
    session_id: str,
    since_id: Annotated[str | None, Query(max_length=100)] = None,
    after_sequence: Sequence = None,
    types: TypeList = None,
    exclude: TypeList = None,
    last_event_id: Annotated[str | None, Header(max_length=100)] = None,
) -> EventSourceResponse:
    """Follow the session's events live as server-sent events; resumes after ``since_id``,
    ``after_sequence`` or ``Last-Event-ID`` without losing or repeating any."""
    await services(request).channels.own(call, session_id)
    return await sse_response(
        request,
        call.caller,
        session_id,
        since_id=since_id or last_event_id,
        after_sequence=after_sequence,
        types=types or (),
        exclude=exclude or (),
    )


@router.post(f"{BASE}/runtime-auth", response_model=RuntimeAuthResponse)
async def runtime_auth(request: Request, call: CallDep) -> RuntimeAuthResponse:
    """Mint a short-lived runtime token for the ``End-User`` of this call, for a browser or a
    mobile app: it reaches this channel only, as that end user, until ``expires_in``."""
    minted = await services(request).channel_auth.mint_runtime_token(call)
    return RuntimeAuthResponse(
        access_token=minted.access_token,
        expires_in=minted.expires_in,
        virtual_user_id=minted.virtual_user_id,
    )
