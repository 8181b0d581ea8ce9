"""Routes for a person in the loop: answering ``ask_user`` questions, deciding tool calls held
back for approval, and what a session is waiting for."""

from __future__ import annotations

from fastapi import APIRouter, Request

from everloop.api.deps import CallerDep, services
from everloop.api.human_input_schemas import (
    AnswerSetIn,
    PendingInputResponse,
    QuestionAnswersRequest,
    QuestionAnswersResponse,
    ToolApprovalsRequest,
    ToolApprovalsResponse,
)

router = APIRouter(tags=["people in the loop"])


@router.get("/v1/sessions/{session_id}/pending-input", response_model=PendingInputResponse)
async def pending_input(
    request: Request, caller: CallerDep, session_id: str
) -> PendingInputResponse:
    """What the session's turn waits for from a person.

    The ``ask_user`` question sets not answered yet and the tool calls waiting for approval,
    each with when it was asked and when it expires (an unanswered question then times out; an
    undecided call is denied).
    """
    hub = services(request)
    await hub.sessions.get(caller, session_id)
    found = await hub.human_input.pending(caller.organization_id, session_id)
    return PendingInputResponse.model_validate(found)


@router.post("/v1/sessions/{session_id}/question-answers", response_model=QuestionAnswersResponse)
async def answer_questions(
    request: Request,
    caller: CallerDep,
    session_id: str,
    body: QuestionAnswersRequest | list[AnswerSetIn],
) -> QuestionAnswersResponse:
    """Answer the questions the agent asked with ``ask_user``.

    Body: ``{"tool_call_id", "answers": [{"question_id", "answer"}]}`` (``tool_call_id`` may be
    left out when one question set is pending), or several sets as ``answer_sets`` or a JSON
    list. Every question of a set needs an answer; a choice question takes one of its choices
    (a list of them when ``multiple``). The turn goes on with the answers as the tool's result.
    409 when the session waits for no answers or the set was answered already.
    """
    hub = services(request)
    await hub.sessions.get(caller, session_id)
    payload = [s.model_dump() for s in body] if isinstance(body, list) else body.service_body()
    done = await hub.human_input.answer_questions(caller.organization_id, session_id, payload)
    return QuestionAnswersResponse.model_validate(done)


@router.post("/v1/sessions/{session_id}/tool-approvals", response_model=ToolApprovalsResponse)
async def decide_tool_approvals(
    request: Request, caller: CallerDep, session_id: str, body: ToolApprovalsRequest
) -> ToolApprovalsResponse:
    """Approve or deny tool calls held back by the ``tool_approval`` capability.

    Body: ``{"decisions": [{"tool_call_id", "approved", "reason"}]}``. An approved call runs
    (once, even across a restart); a denied one does not, and the model sees ``reason`` as its
    error. A call is decided once: deciding it again is a 409, as is a body for a session that
    waits for no approval.
    """
    hub = services(request)
    await hub.sessions.get(caller, session_id)
    payload = {"decisions": [d.model_dump() for d in body.decisions]}
    done = await hub.human_input.decide_approvals(caller.organization_id, session_id, payload)
    return ToolApprovalsResponse.model_validate(done)
