"""A person in the loop: the questions (``ask_user``) and tool approvals a session's turn waits
for, and the answers and decisions that settle them.

The turn parks its calls as pending rows (``engine.human_input``); this service reads them and
settles them, each exactly once (a guarded update: a second decision for one call is a 409),
writing the events in the same transaction, then wakes the waiting turn. The management API
(``/v1/sessions/{id}/question-answers``, ``tool-approvals``, ``pending-input``) and the agent
channel routes call these methods with the caller's organization.

Bodies:

- answers: ``{"tool_call_id": "...", "answers": [{"question_id": "...", "answer": "..."}]}``
  (``tool_call_id`` may be left out when one question set is pending); several sets at once as
  ``{"answer_sets": [<set>, ...]}`` or a JSON list of sets. An answer is a string, or a list of
  strings for a ``multiple`` choice question.
- decisions: ``{"decisions": [{"tool_call_id": "...", "approved": true, "reason": "..."}]}``;
  a denial's ``reason`` is what the model sees as the call's error.

All or nothing: a bad entry refuses the whole body (422 naming the field) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.human_input import BadQuestions, check_answers, normalize_questions
from everloop.domain.messages import ToolCallPart
from everloop.domain.timestamps import now
from everloop.engine import events as ev
from everloop.engine.client_wait import client_completed
from everloop.engine.signals import Signals
from everloop.errors import Conflict, InvalidInput, NotFound
from everloop.store import client_tools as client_store
from everloop.store import turns as turn_store
from everloop.store.client_tools import APPROVAL, QUESTION, ClientCall
from everloop.store.db import Database
from everloop.store.event_log import append_events

MAX_SETS = 50
MAX_DECISIONS = 200
MAX_REASON_CHARS = 2000


class HumanInputService:
    def __init__(self, db: Database, signals: Signals) -> None:
        self._db = db
        self._signals = signals

    async def pending(self, org_id: str, session_id: str) -> dict[str, Any]:
        """The session's unanswered questions and undecided tool calls."""
        async with self._db.read() as conn:
            await _session_status(conn, org_id, session_id)
            calls = await client_store.pending_for_session(conn, session_id, (QUESTION, APPROVAL))
        questions, approvals = [], []
        for call in calls:
            base = {
                "tool_call_id": call.call_id,
                "turn_id": call.turn_id,
                "requested_at": call.created_at,
                "expires_at": call.deadline,
            }
            if call.kind == QUESTION:
                try:
                    normalized = normalize_questions(call.arguments)
                except BadQuestions:  # settled at once when parked; never pending
                    continue
                questions.append({**base, "questions": normalized})
            else:
                approvals.append({**base, "tool_name": call.name, "arguments": call.arguments})
        return {"pending_questions": questions, "pending_approvals": approvals}

    async def answer_questions(self, org_id: str, session_id: str, body: Any) -> dict[str, Any]:
        """Answer pending ``ask_user`` question sets; ``{accepted, status, tool_call_ids}``."""
        sets = _answer_sets(body)
        async with self._db.write() as conn:
            status = await _session_status(conn, org_id, session_id)
            pending = {
                c.call_id: c
                for c in await client_store.pending_for_session(conn, session_id, (QUESTION,))
            }
            if not pending:
                raise Conflict(
                    f"session '{session_id}' is not waiting for answers (status: {status})",
                    code="not_waiting_for_answers",
                )
            settled: list[tuple[ClientCall, list[dict[str, Any]]]] = []
            for where, call_id, answers in sets:
                if call_id is None:
                    if len(pending) != 1:
                        raise InvalidInput(
                            f"{len(pending)} question sets are pending: name one by tool_call_id",
                            field=f"{where}tool_call_id",
                        )
                    call_id = next(iter(pending))
                call = pending.get(call_id)
                if call is None or any(c.call_id == call_id for c, _ in settled):
                    await _not_pending(conn, session_id, call_id, QUESTION, f"{where}tool_call_id")
                checked = check_answers(
                    normalize_questions(call.arguments), answers, field=f"{where}answers"
                )
                settled.append((call, checked))
            new: list[NewEvent] = []
            for call, checked in settled:
                result: dict[str, Any] = {"answers": checked}
                if not await client_store.settle(
                    conn, call.turn_id, call.call_id, status="answered", result=result
                ):
                    raise Conflict(
                        f"'{call.call_id}' was settled meanwhile", code="already_answered"
                    )
                context = await _turn_context(conn, call.turn_id)
                answered = ev.questions_answered(tool_call_id=call.call_id, answers=checked)
                new.append(NewEvent(ev.TOOL_QUESTIONS_ANSWERED, answered, context))
                done = client_completed(call, result, None, "success")
                new.append(NewEvent(ev.TOOL_COMPLETED, done, context))
            await append_events(conn, session_id, new)
            status_after = await _status_after(conn, session_id, status)
        self._signals.events_appended(session_id)  # wakes the turn waiting for the answers
        return {
            "accepted": len(settled),
            "status": status_after,
            "tool_call_ids": [c.call_id for c, _ in settled],
        }

    async def decide_approvals(self, org_id: str, session_id: str, body: Any) -> dict[str, Any]:
        """Approve or deny tool calls held back for approval; ``{accepted, status,
        decisions}``. A call is decided once: a second decision is a 409."""
        decisions = _decisions(body)
        async with self._db.write() as conn:
            status = await _session_status(conn, org_id, session_id)
            found = await client_store.calls_in_session(
                conn, session_id, [d["tool_call_id"] for d in decisions], APPROVAL
            )
            if not any(c.status == client_store.PENDING for c in found.values()) and not (
                await client_store.pending_for_session(conn, session_id, (APPROVAL,))
            ):
                raise Conflict(
                    f"session '{session_id}' is not waiting for tool approvals (status: {status})",
                    code="not_waiting_for_approval",
                )
            for index, decision in enumerate(decisions):
                call = found.get(decision["tool_call_id"])
                if call is None or call.status != client_store.PENDING:
                    field = f"decisions[{index}].tool_call_id"
                    await _not_pending(conn, session_id, decision["tool_call_id"], APPROVAL, field)
            new: list[NewEvent] = []
            for decision in decisions:
                call = found[decision["tool_call_id"]]
                approved, reason = decision["approved"], decision["reason"]
                error = None if approved else _denial(reason)
                if not await client_store.settle(
                    conn,
                    call.turn_id,
                    call.call_id,
                    status="approved" if approved else "denied",
                    result={"approved": approved, "reason": reason},
                    error=error,
                ):
                    raise Conflict(
                        f"tool call '{call.call_id}' was decided meanwhile", code="already_decided"
                    )
                context = await _turn_context(conn, call.turn_id)
                part = ToolCallPart(call.call_id, call.name, call.arguments)
                decided = ev.approval_decided(
                    tool_call=part, approved=approved, reason=reason, decided_by="person"
                )
                new.append(NewEvent(ev.TOOL_APPROVAL_DECIDED, decided, context))
                if approved:
                    new.append(NewEvent(ev.TOOL_STARTED, ev.tool_started(tool_call=part), context))
                else:
                    done = client_completed(call, None, error, "error")
                    new.append(NewEvent(ev.TOOL_COMPLETED, done, context))
            await append_events(conn, session_id, new)
            status_after = await _status_after(conn, session_id, status)
        self._signals.events_appended(session_id)  # wakes the turn waiting for the decisions
        return {
            "accepted": len(decisions),
            "status": status_after,
            "decisions": [
                {"tool_call_id": d["tool_call_id"], "approved": d["approved"]} for d in decisions
            ],
        }


def _denial(reason: str | None) -> str:
    if reason:
        return f"denied by the user: {reason}"
    return "denied by the user: this call was not approved, so it did not run"


async def _session_status(conn: AsyncConnection, org_id: str, session_id: str) -> str:
    ids.parse("session", session_id, field="session_id")
    found = await turn_store.session_preview(conn, org_id, session_id)
    if found is None:
        raise NotFound.of("session", session_id)
    return found[1] or "started"


async def _status_after(conn: AsyncConnection, session_id: str, status: str) -> str:
    """The session's status once these calls are settled: still waiting while any call of its
    turn is pending, else active (the turn goes on)."""
    if await client_store.pending_for_session(conn, session_id):
        return status
    await turn_store.update_session(conn, session_id, {"status": "active", "updated_at": now()})
    return "active"


async def _not_pending(
    conn: AsyncConnection, session_id: str, call_id: str, kind: str, field: str
) -> NoReturn:
    """Refuse a call id that is not pending: 409 if it was settled before, else 422."""
    found = await client_store.calls_in_session(conn, session_id, [call_id], kind)
    call = found.get(call_id)
    what = "answered" if kind == QUESTION else "decided"
    if call is not None and call.status != client_store.PENDING:
        raise Conflict(
            f"tool call '{call_id}' was already {what} ({call.status})", code=f"already_{what}"
        )
    if call is not None:
        raise InvalidInput(f"tool call '{call_id}' appears twice", field=field)
    noun = "question set" if kind == QUESTION else "tool call waiting for approval"
    raise InvalidInput(f"'{call_id}' is not a {noun} of this session", field=field)


async def _turn_context(conn: AsyncConnection, turn_id: str) -> EventContext:
    turn = await turn_store.get_turn(conn, turn_id)
    assert turn is not None
    return EventContext(turn_id=turn_id, input_message_id=turn.input_message_id, trace_id=turn_id)


def _answer_sets(body: Any) -> list[tuple[str, str | None, Any]]:
    """(field prefix, tool_call_id or None, answers) of each answer set in ``body``."""
    if isinstance(body, list):
        raw, prefix = body, ""
    elif isinstance(body, Mapping) and "answer_sets" in body:
        raw, prefix = body["answer_sets"], "answer_sets"
    elif isinstance(body, Mapping):
        return [("", _call_id(body.get("tool_call_id"), "tool_call_id"), body.get("answers"))]
    else:
        raise InvalidInput("the body is an answer set {tool_call_id, answers}", field="body")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_SETS:
        raise InvalidInput(f"a list of 1 to {MAX_SETS} answer sets", field=prefix or "body")
    sets = []
    for index, item in enumerate(raw):
        where = f"{prefix}[{index}]."
        if not isinstance(item, Mapping):
            raise InvalidInput("an answer set is {tool_call_id, answers}", field=where[:-1])
        call_id = _call_id(item.get("tool_call_id"), f"{where}tool_call_id")
        sets.append((where, call_id, item.get("answers")))
    return sets


def _call_id(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 100:
        raise InvalidInput("tool_call_id is a string of 1 to 100 characters", field=field)
    return value


def _decisions(body: Any) -> list[dict[str, Any]]:
    raw = body.get("decisions") if isinstance(body, Mapping) else None
    if not isinstance(raw, list) or not raw or len(raw) > MAX_DECISIONS:
        raise InvalidInput(
            f"decisions is a list of 1 to {MAX_DECISIONS} decisions", field="decisions"
        )
    decisions: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"decisions[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInput("a decision is {tool_call_id, approved, reason}", field=where)
        call_id = _call_id(item.get("tool_call_id"), f"{where}.tool_call_id")
        if call_id is None:
            raise InvalidInput("tool_call_id is required", field=f"{where}.tool_call_id")
        if call_id in seen:
            raise InvalidInput(f"'{call_id}' is decided twice", field=f"{where}.tool_call_id")
        seen.add(call_id)
        approved = item.get("approved")
        if not isinstance(approved, bool):
            raise InvalidInput("approved is true or false", field=f"{where}.approved")
        reason = item.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS):
            raise InvalidInput(
                f"reason is text of at most {MAX_REASON_CHARS} characters", field=f"{where}.reason"
            )
        decisions.append({"tool_call_id": call_id, "approved": approved, "reason": reason or None})
    return decisions
