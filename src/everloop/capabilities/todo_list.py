"""Capability ``stateless_todo_list``: the agent keeps a plan as a todo list in the
conversation itself.

``write_todos`` takes the whole list every time and returns it as accepted: the list's only
copy is that call in the history, so there is nothing to store, to migrate or to clean up, and
a fork or an export carries the plan with the conversation. The tool is pure: running it again
after a crash changes nothing. Its checks (one item in progress at most, bounded count and
length, unique ids) answer with errors that name the item, so the model can fix its call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError, object_schema
from everloop.domain.messages import JsonObject, JsonValue

MAX_TODOS: Final = 50
MAX_CONTENT_CHARS: Final = 500
MAX_ID_CHARS: Final = 64
STATUSES: Final = ("pending", "in_progress", "completed")

PROMPT: Final = (
    "Use the write_todos tool to plan and track work that takes several steps: call it with "
    "the complete list each time (it replaces the previous one), keep exactly one item "
    "in_progress while you work on it, mark items completed as soon as they are done, and add "
    "items you discover. Skip it for simple requests that take one or two steps."
)

_ITEM: JsonObject = {
    "type": "object",
    "properties": {
        "content": {"type": "string", "description": "What to do (one line)."},
        "status": {"type": "string", "enum": list[JsonValue](STATUSES)},
        "id": {"type": "string", "description": "Optional stable id of the item."},
    },
    "required": ["content", "status"],
    "additionalProperties": False,
}


def _label(index: int, item: Mapping[str, Any]) -> str:
    """How an error names an item: by position (1-based), and id when it has one."""
    item_id = item.get("id")
    return f"todos[{index}]" + (f" (id {item_id!r})" if item_id else "")


def check_todos(todos: Sequence[Mapping[str, Any]]) -> list[JsonObject]:
    """The list as accepted (content trimmed), or ``ToolError`` naming the first problem."""
    if len(todos) > MAX_TODOS:
        raise ToolError(f"at most {MAX_TODOS} todos (got {len(todos)}): merge or drop some")
    accepted: list[JsonObject] = []
    seen: dict[str, int] = {}
    in_progress: list[str] = []
    for index, item in enumerate(todos):
        label = _label(index, item)
        content = " ".join(str(item["content"]).split())
        if not content:
            raise ToolError(f"{label}: content must not be empty")
        if len(content) > MAX_CONTENT_CHARS:
            raise ToolError(
                f"{label}: content must be at most {MAX_CONTENT_CHARS} characters "
                f"(got {len(content)})"
            )
        entry: JsonObject = {"content": content, "status": item["status"]}
        item_id = item.get("id")
        if item_id is not None:
            if not item_id or len(item_id) > MAX_ID_CHARS:
                raise ToolError(f"{label}: id must be 1 to {MAX_ID_CHARS} characters")
            if item_id in seen:
                raise ToolError(
                    f"{label}: id {item_id!r} is already used by todos[{seen[item_id]}]"
                )
            seen[item_id] = index
            entry["id"] = item_id
        if item["status"] == "in_progress":
            in_progress.append(label)
        accepted.append(entry)
    if len(in_progress) > 1:
        raise ToolError(
            f"at most one todo may be in_progress (got {len(in_progress)}: "
            f"{', '.join(in_progress)}): finish one or set the others to pending"
        )
    return accepted


@dataclass(frozen=True, slots=True)
class WriteTodos:
    name: str = "write_todos"
    side_effect: ClassVar[SideEffect] = SideEffect.PURE
    description: str = (
        "Replace your todo list with `todos`, the complete list (pending, in_progress or "
        f"completed; at most one in_progress, at most {MAX_TODOS} items of at most "
        f"{MAX_CONTENT_CHARS} characters). Returns the list as accepted."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {"todos": {"type": "array", "items": _ITEM}}, ["todos"]
        )
    )

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        raw = arguments["todos"]
        assert isinstance(raw, list)  # the schema says so
        todos = check_todos([item for item in raw if isinstance(item, Mapping)])
        counts: JsonObject = {s: sum(1 for t in todos if t["status"] == s) for s in STATUSES}
        return {"todos": list[JsonValue](todos), "counts": counts}


def build_todo_list_capability() -> Capability:
    return Capability(
        id="stateless_todo_list",
        name="Todo list",
        description=(
            "A todo list for planning multi-step work (write_todos); it lives in the "
            "conversation history, nothing is stored."
        ),
        category="planning",
        system_prompt_addition=PROMPT,
        tools=(WriteTodos(),),
    )
