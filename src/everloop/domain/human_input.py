"""A person in the loop, as data: ``ask_user`` questions and their answers, and which tool
calls need a person's approval before they run (the ``tool_approval`` capability's config).

Pure: no I/O. The engine parks a turn on these (``engine.human_input``); the service checks
what a person sends against them (``services.human_input``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from everloop.errors import InvalidInput

ASK_USER = "ask_user"
ASK_USER_CAPABILITY = "ask_user"
TOOL_APPROVAL_CAPABILITY = "tool_approval"
# The client hint that says the client can show questions to a person: without it the
# ``ask_user`` tool is not offered to the model (the turn would wait for nobody).
ASK_USER_HINT = "ask_user"

MAX_QUESTIONS = 10
MAX_CHOICES = 20
MAX_ANSWER_CHARS = 10_000
RISK_ORDER = {"low": 0, "medium": 1, "high": 2}

QUESTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "questions": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_QUESTIONS,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "question": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "choices": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_CHOICES,
                        "items": {"type": "string", "minLength": 1, "maxLength": 200},
                    },
                    "multiple": {"type": "boolean"},
                    "allow_other": {"type": "boolean"},
                },
                "required": ["question"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["questions"],
    "additionalProperties": False,
}


class BadQuestions(ValueError):
    """The model's ``ask_user`` arguments are not a question set (the model is told why)."""


def normalize_questions(arguments: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The questions of an ``ask_user`` call, each with an ``id`` (``q1``, ``q2``... when the
    model gave none), ``question``, ``choices`` (None: free text), ``multiple`` and
    ``allow_other``. Deterministic: the park and the answer derive the same ids."""
    raw = arguments.get("questions")
    if not isinstance(raw, list) or not raw:
        raise BadQuestions("ask_user needs `questions`: a list of at least one question")
    if len(raw) > MAX_QUESTIONS:
        raise BadQuestions(f"ask_user takes at most {MAX_QUESTIONS} questions")
    questions: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise BadQuestions(f"questions[{index}] must be an object")
        text = item.get("question")
        if not isinstance(text, str) or not text.strip():
            raise BadQuestions(f"questions[{index}].question must be non-empty text")
        qid = item.get("id") or f"q{index + 1}"
        if not isinstance(qid, str) or qid in seen:
            raise BadQuestions(f"questions[{index}].id must be a unique string")
        seen.add(qid)
        choices = item.get("choices")
        if choices is not None and (
            not isinstance(choices, list)
            or not choices
            or len(choices) > MAX_CHOICES
            or not all(isinstance(c, str) and c for c in choices)
        ):
            raise BadQuestions(f"questions[{index}].choices must be 1 to {MAX_CHOICES} strings")
        questions.append(
            {
                "id": qid,
                "question": text,
                "choices": list(choices) if choices is not None else None,
                "multiple": item.get("multiple") is True,
                "allow_other": item.get("allow_other") is True,
            }
        )
    return questions


def check_answers(
    questions: Sequence[Mapping[str, Any]], answers: Any, *, field: str = "answers"
) -> list[dict[str, Any]]:
    """The answers to ``questions`` as the model sees them (``question_id``, ``question``,
    ``answer``), or ``InvalidInput`` naming the field: every question answered once, a choice
    question with one of its choices (several only when ``multiple``; another text only when
    ``allow_other``)."""
    if not isinstance(answers, list) or not answers:
        raise InvalidInput("answers must be a non-empty list", field=field)
    by_id = {q["id"]: q for q in questions}
    given: dict[str, Any] = {}
    for index, item in enumerate(answers):
        where = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInput("an answer is an object {question_id, answer}", field=where)
        qid = item.get("question_id")
        if not isinstance(qid, str) or qid not in by_id:
            known = ", ".join(by_id)
            raise InvalidInput(
                f"unknown question_id {qid!r} (the questions are: {known})",
                field=f"{where}.question_id",
            )
        if qid in given:
            raise InvalidInput(f"question {qid!r} is answered twice", field=f"{where}.question_id")
        given[qid] = _answer(by_id[qid], item.get("answer"), f"{where}.answer")
    missing = [qid for qid in by_id if qid not in given]
    if missing:
        raise InvalidInput(f"no answer for question(s) {', '.join(missing)}", field=field)
    return [
        {"question_id": q["id"], "question": q["question"], "answer": given[q["id"]]}
        for q in questions
    ]


def _answer(question: Mapping[str, Any], answer: Any, field: str) -> Any:
    choices = question.get("choices")
    values = answer if isinstance(answer, list) else [answer]
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise InvalidInput("an answer is non-empty text (or a list of texts)", field=field)
    if any(len(v) > MAX_ANSWER_CHARS for v in values):
        raise InvalidInput(f"an answer is limited to {MAX_ANSWER_CHARS} characters", field=field)
    if isinstance(answer, list) and not (choices and question.get("multiple")):
        raise InvalidInput("this question takes one answer, not a list", field=field)
    if choices and not question.get("allow_other"):
        wrong = [v for v in values if v not in choices]
        if wrong:
            raise InvalidInput(
                f"{wrong[0]!r} is not one of the choices: {', '.join(choices)}", field=field
            )
    return answer


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """Which server-side tool calls wait for a person's approval (the ``tool_approval``
    capability's config): every tool (``all``), tools by ``tools`` name, by ``patterns``
    (shell-style globs, e.g. ``mcp_billing__*``), or at or above a ``risk`` level. A config
    that cannot be read requires approval for every tool: a broken gate stays closed."""

    all: bool = False
    tools: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()
    risk: str | None = None
    timeout_seconds: float | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ApprovalPolicy:
        config = config or {}
        try:
            tools = config.get("tools") or []
            patterns = config.get("patterns") or []
            risk = config.get("risk")
            timeout = config.get("timeout_seconds")
            if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
                raise ValueError("tools")
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise ValueError("patterns")
            if risk is not None and risk not in RISK_ORDER:
                raise ValueError("risk")
            if timeout is not None and (
                isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
            ):
                raise ValueError("timeout_seconds")
            every = config.get("all") is True or not (tools or patterns or risk)
        except ValueError:
            return cls(all=True)
        return cls(every, frozenset(tools), tuple(patterns), risk, timeout)

    def requires(self, name: str, risk: str | None) -> bool:
        """Whether a call of tool ``name`` (of risk level ``risk``, if known) needs approval."""
        if self.all or name in self.tools:
            return True
        if any(fnmatch.fnmatchcase(name, p) for p in self.patterns):
            return True
        if self.risk is not None and risk is not None:
            return RISK_ORDER.get(risk, 2) >= RISK_ORDER[self.risk]
        return False


APPROVAL_CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "all": {"type": "boolean", "description": "Every server-side tool call needs approval."},
        "tools": {"type": "array", "items": {"type": "string"}, "description": "Tool names."},
        "patterns": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Shell-style globs on tool names, e.g. `mcp_billing__*`.",
        },
        "risk": {
            "enum": ["low", "medium", "high"],
            "description": "Tools of a capability at or above this risk level (an MCP tool "
            "that is neither read-only nor idempotent is high).",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "How long a call waits for a decision; then it is denied.",
        },
    },
    "additionalProperties": False,
}

ASK_USER_CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "How long a question waits for an answer.",
        }
    },
    "additionalProperties": False,
}
