"""Capabilities ``ask_user`` and ``tool_approval``: a person in the loop.

``ask_user`` has one tool, ``ask_user``, that a person answers: the turn hands its call to the
client like a client-side tool's (``engine.human_input``) and waits, durably, for the answers
(``POST /v1/sessions/{id}/question-answers``). The tool is offered only when the client says it
can show questions (the client hint ``ask_user``); it never runs on the server.

``tool_approval`` has no tool: its config names the server-side calls that wait for a person's
approval before they run (``domain.human_input.ApprovalPolicy``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError
from everloop.domain.human_input import (
    APPROVAL_CONFIG_SCHEMA,
    ASK_USER,
    ASK_USER_CAPABILITY,
    ASK_USER_CONFIG_SCHEMA,
    QUESTIONS_SCHEMA,
    TOOL_APPROVAL_CAPABILITY,
)
from everloop.domain.messages import JsonObject, JsonValue


@dataclass(frozen=True, slots=True)
class AskUser:
    """Tool ``ask_user``: questions for the person using the client (answered by them)."""

    name: str = ASK_USER
    # Nothing runs on the server: the turn waits for a person's answers instead.
    side_effect: ClassVar[SideEffect] = SideEffect.PURE
    description: str = (
        "Ask the user one or more questions and wait for the answers. Each question is free "
        "text, or offers `choices` (set `multiple` to let the user pick several, `allow_other` "
        "to accept another answer). Use it when you need a decision or a fact only the user has."
    )
    parameters: JsonObject = field(default_factory=lambda: dict(QUESTIONS_SCHEMA))

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        raise ToolError("ask_user is answered by the user, not run on the server")


def build_ask_user_capability() -> Capability:
    return Capability(
        id=ASK_USER_CAPABILITY,
        name="Ask the user",
        description=(
            "Lets the agent ask the user questions (free text or choices) and wait for the "
            "answers. Offered only to clients that send the hint `ask_user`."
        ),
        category="interaction",
        features=("ask_user",),
        tools=(AskUser(),),
        config_schema=ASK_USER_CONFIG_SCHEMA,
    )


def build_tool_approval_capability() -> Capability:
    return Capability(
        id=TOOL_APPROVAL_CAPABILITY,
        name="Tool approvals",
        description=(
            "Holds back the server-side tool calls its config names (by tool, glob pattern, "
            "risk level, or all) until a person approves or denies each; no decision in time "
            "is a denial."
        ),
        category="governance",
        features=("tool_approval",),
        config_schema=APPROVAL_CONFIG_SCHEMA,
    )
