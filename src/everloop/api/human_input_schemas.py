"""Wire models of a person in the loop: answers to ``ask_user`` questions, decisions on tool
calls held back for approval, and what a session waits for (``services.human_input``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool, StringConstraints

from everloop.api.schemas import WireModel

CallId = Annotated[str, StringConstraints(min_length=1, max_length=100)]
AnswerText = Annotated[str, StringConstraints(max_length=10_000)]
SessionStatus = Literal["started", "active", "idle", "waitingfortoolresults", "paused"]


class AnswerIn(WireModel):
    question_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    answer: AnswerText | Annotated[list[AnswerText], Field(max_length=20)]


class AnswerSetIn(WireModel):
    tool_call_id: CallId | None = None
    answers: Annotated[list[AnswerIn], Field(min_length=1, max_length=10)]


class QuestionAnswersRequest(WireModel):
    """One answer set (``tool_call_id`` may be left out when one set is pending), or several
    as ``answer_sets``."""

    tool_call_id: CallId | None = None
    answers: Annotated[list[AnswerIn], Field(min_length=1, max_length=10)] | None = None
    answer_sets: Annotated[list[AnswerSetIn], Field(min_length=1, max_length=50)] | None = None

    def service_body(self) -> Any:
        if self.answer_sets is not None:
            return {"answer_sets": [s.model_dump() for s in self.answer_sets]}
        answers = [a.model_dump() for a in self.answers] if self.answers is not None else None
        return {"tool_call_id": self.tool_call_id, "answers": answers}


class QuestionAnswersResponse(BaseModel):
    accepted: int
    status: SessionStatus
    tool_call_ids: list[str]


class DecisionIn(WireModel):
    tool_call_id: CallId
    approved: StrictBool
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ToolApprovalsRequest(WireModel):
    decisions: Annotated[list[DecisionIn], Field(min_length=1, max_length=200)]


class DecisionOut(BaseModel):
    tool_call_id: str
    approved: StrictBool


class ToolApprovalsResponse(BaseModel):
    accepted: int
    status: SessionStatus
    decisions: list[DecisionOut]


class QuestionOut(BaseModel):
    id: str
    question: str
    choices: list[str] | None
    multiple: bool
    allow_other: bool


class PendingQuestionSet(BaseModel):
    tool_call_id: str
    turn_id: str
    questions: list[QuestionOut]
    requested_at: str
    expires_at: str


class PendingApproval(BaseModel):
    tool_call_id: str
    turn_id: str
    tool_name: str
    arguments: dict[str, Any]
    requested_at: str
    expires_at: str


class PendingInputResponse(BaseModel):
    pending_questions: list[PendingQuestionSet]
    pending_approvals: list[PendingApproval]
