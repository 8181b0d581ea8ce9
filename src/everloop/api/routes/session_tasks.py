"""Routes of session tasks: a session's background work (its subagents), and the
organization's (``/v1/tasks``). Shapes are Everruns' ``SessionTask``, ``SessionTaskDetail`` and
``TaskMessage``; see ``services.session_tasks``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from everloop.api.deps import CallerDep, services
from everloop.api.task_schemas import (
    PostTaskMessageBody,
    SessionTaskDetailResponse,
    SessionTaskResponse,
    TaskMessageResponse,
    message_out,
    task_out,
)
from everloop.domain.session_tasks import TaskState

router = APIRouter(tags=["session-tasks"])

StateQuery = Annotated[TaskState | None, Query(description="Only tasks in this state.")]
KindQuery = Annotated[
    str | None, Query(max_length=40, description="Only tasks of this kind (`subagent`).")
]


@router.get("/v1/sessions/{session_id}/tasks", response_model=list[SessionTaskResponse])
async def list_tasks(
    request: Request,
    caller: CallerDep,
    session_id: str,
    state: StateQuery = None,
    kind: KindQuery = None,
) -> list[SessionTaskResponse]:
    """The session's tasks (its subagents), oldest first."""
    found = await services(request).session_tasks.list_tasks(
        caller, session_id, state=state, kind=kind
    )
    return [task_out(task) for task in found]


@router.get("/v1/sessions/{session_id}/tasks/{task_id}", response_model=SessionTaskDetailResponse)
async def get_task(
    request: Request,
    caller: CallerDep,
    session_id: str,
    task_id: str,
    after_id: Annotated[
        str | None,
        Query(max_length=100, description="Only messages after this one (exclusive cursor)."),
    ] = None,
    limit: Annotated[int, Query(ge=0, le=500, description="At most this many messages.")] = 50,
) -> SessionTaskDetailResponse:
    """The task and its messages, oldest first: the task (inbound), follow-ups (inbound) and
    the subagent's answers (outbound)."""
    task, messages = await services(request).session_tasks.get_task(
        caller, session_id, task_id, after_id=after_id, limit=limit
    )
    return SessionTaskDetailResponse(
        task=task_out(task), messages=[message_out(m) for m in messages]
    )


@router.post("/v1/sessions/{session_id}/tasks/{task_id}/cancel", response_model=SessionTaskResponse)
async def cancel_task(
    request: Request, caller: CallerDep, session_id: str, task_id: str
) -> SessionTaskResponse:
    """Cancel a working task: its subagent's turn (and its own subagents') is cancelled and the
    task settles as ``canceled``. A task that has ended is returned unchanged."""
    task = await services(request).session_tasks.cancel_task(caller, session_id, task_id)
    return task_out(task)


@router.post(
    "/v1/sessions/{session_id}/tasks/{task_id}/messages", response_model=TaskMessageResponse
)
async def post_task_message(
    request: Request,
    caller: CallerDep,
    session_id: str,
    task_id: str,
    body: PostTaskMessageBody,
) -> TaskMessageResponse:
    """A follow-up to a subagent that has finished: its next user message, worked on in a new
    turn of its session (the task is ``running`` again). 409 (``task_active``) while it is
    still working; 422 for an empty message."""
    content = (
        [part.model_dump(exclude_none=True) for part in body.content]
        if body.content is not None
        else None
    )
    sent = await services(request).session_tasks.post_task_message(
        caller,
        session_id,
        task_id,
        text=body.text,
        content=content,
        in_reply_to=body.in_reply_to,
    )
    return message_out(sent)


@router.get("/v1/tasks", response_model=list[SessionTaskResponse])
async def list_org_tasks(
    request: Request,
    caller: CallerDep,
    state: StateQuery = None,
    kind: KindQuery = None,
    created_after: Annotated[
        str | None,
        Query(max_length=64, description="Only tasks created at or after this RFC 3339 time."),
    ] = None,
    root_session_id: Annotated[
        str | None,
        Query(max_length=100, description="Only tasks of the delegation tree of this session."),
    ] = None,
    limit: Annotated[int, Query(ge=0, le=500, description="At most this many tasks.")] = 100,
) -> list[SessionTaskResponse]:
    """The organization's tasks, newest first (those of deleted sessions are gone with them)."""
    found = await services(request).session_tasks.list_org_tasks(
        caller,
        state=state,
        kind=kind,
        created_after=created_after,
        root_session_id=root_session_id,
        limit=limit,
    )
    return [task_out(task) for task in found]
