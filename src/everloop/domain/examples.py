"""The built-in galleries: the harnesses every org is seeded with, harness examples
(``GET /v1/harness-examples``) and agent examples (``POST /v1/agents/import?from-example=``).

All of it is data. An agent example is the document ``GET /v1/agents/{id}/export`` would write
for it (``agent_example_document``): importing one goes through the same parse, validation and
create as any imported document, so an imported example exports back to the same document. The
capabilities named here are ones everloop registers (``bootstrap.build_capabilities``); the
tests hold every gallery to that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from everloop.domain.agent_documents import render

# Seeded into every org, read-only (``services.config_resources.HarnessService``).
BUILT_IN_HARNESSES: tuple[dict[str, Any], ...] = (
    {
        "name": "base",
        "display_name": "Base",
        "description": "A bare assistant: no capabilities.",
        "system_prompt": "You are a helpful assistant.",
        "capabilities": [],
    },
    {
        "name": "generic",
        "display_name": "Generic",
        "description": "The recommended default harness.",
        "system_prompt": "You are a helpful assistant.",
        "capabilities": [
            {"ref": "current_time", "config": None},
            {"ref": "compaction", "config": None},
        ],
    },
)
DEFAULT_HARNESS_NAME = "generic"


def _caps(*refs: str) -> tuple[dict[str, Any], ...]:
    return tuple({"ref": ref, "config": None} for ref in refs)


@dataclass(frozen=True, slots=True)
class HarnessExample:
    """A read-only harness shape to start from; ``parent_name`` is resolved per org by name."""

    name: str
    display_name: str
    description: str
    capabilities: tuple[dict[str, Any], ...]
    tags: tuple[str, ...] = ()
    parent_name: str | None = None
    dev_only: bool = False


HARNESS_EXAMPLES: tuple[HarnessExample, ...] = (
    *(
        HarnessExample(
            name=spec["name"],
            display_name=spec["display_name"],
            description=f"{spec['description']} Built in: every organization has it.",
            capabilities=tuple(spec["capabilities"]),
            tags=("built-in",),
        )
        for spec in BUILT_IN_HARNESSES
    ),
    HarnessExample(
        name="researcher",
        display_name="Researcher",
        description="Reads web pages through the egress guard and keeps notes and sources "
        "in the session's files.",
        capabilities=_caps("web_fetch", "file_system"),
        tags=("research", "web"),
        parent_name="generic",
    ),
    HarnessExample(
        name="data-analyst",
        display_name="Data Analyst",
        description="Loads data into the session's sandboxed SQLite databases, queries it and "
        "writes reports to files.",
        capabilities=_caps("sql_database", "file_system"),
        tags=("data", "sql"),
        parent_name="generic",
    ),
    HarnessExample(
        name="orchestrator",
        display_name="Orchestrator",
        description="Splits work across subagents running in parallel and keeps shared state "
        "in a key-value store.",
        capabilities=_caps("subagents", "key_value"),
        tags=("orchestration",),
        parent_name="generic",
    ),
    HarnessExample(
        name="assistant-with-reminders",
        display_name="Assistant with reminders",
        description="Remembers facts in a key-value store and schedules follow-up messages to "
        "its own session.",
        capabilities=_caps("key_value", "session_schedule"),
        tags=("productivity",),
        parent_name="generic",
    ),
    HarnessExample(
        name="tool-playground",
        display_name="Tool playground",
        description="Deterministic arithmetic and demo weather tools, for trying tool calls "
        "without network access or keys.",
        capabilities=_caps("test_math", "test_weather"),
        tags=("testing", "demo"),
        parent_name="base",
        dev_only=True,
    ),
)


@dataclass(frozen=True, slots=True)
class AgentExample:
    """An importable agent: its front matter fields (as a document writes them) and prompt."""

    name: str
    system_prompt: str
    fields: dict[str, Any] = field(default_factory=dict)

    def document(self) -> str:
        return render({"name": self.name, **self.fields}, self.system_prompt)


AGENT_EXAMPLES: tuple[AgentExample, ...] = (
    AgentExample(
        name="dad-jokes-agent",
        system_prompt=(
            "You tell dad jokes: short, clean, groan-worthy puns. When asked about a topic, "
            "make the joke about that topic. One joke per answer unless asked for more."
        ),
        fields={
            "display_name": "Dad jokes",
            "description": "Tells clean, groan-worthy dad jokes on any topic.",
            "harness": "base",
            "tags": ["fun", "example"],
        },
    ),
    AgentExample(
        name="research-assistant",
        system_prompt=(
            "You are a careful research assistant. Read the sources you are given or find "
            "with web_fetch, and keep notes in /workspace/notes.md as you go: each point with "
            "the URL it came from. Answer with a short brief; say what you could not verify. "
            "Use get_current_time when a question depends on today's date."
        ),
        fields={
            "display_name": "Research assistant",
            "description": "Reads web pages and answers with a short, sourced brief; keeps "
            "its notes in the session's files.",
            "harness": "generic",
            "tags": ["research", "example"],
            "capabilities": list(_caps("web_fetch", "file_system")),
        },
    ),
    AgentExample(
        name="data-analyst",
        system_prompt=(
            "You are a data analyst. Put the data you are given into a SQLite database "
            "(create_database, then sql_execute to create tables and insert rows), answer "
            "questions with sql_query, and show the query you ran. Write longer reports to "
            "/workspace/report.md. Never guess a number you did not compute."
        ),
        fields={
            "display_name": "Data analyst",
            "description": "Loads data into a session database, answers with SQL it shows, "
            "writes reports to files.",
            "harness": "generic",
            "tags": ["data", "sql", "example"],
            "capabilities": list(_caps("sql_database", "file_system")),
        },
    ),
    AgentExample(
        name="task-orchestrator",
        system_prompt=(
            "You coordinate larger tasks. Split the request into independent parts, give each "
            "to a subagent with a complete, self-contained task (spawn them in one response so "
            "they run in parallel), record progress in the key-value store, then combine their "
            "results into one answer."
        ),
        fields={
            "display_name": "Task orchestrator",
            "description": "Splits a task across parallel subagents and combines their results.",
            "harness": "generic",
            "tags": ["orchestration", "example"],
            "capabilities": list(_caps("subagents", "key_value")),
        },
    ),
    AgentExample(
        name="reminder-assistant",
        system_prompt=(
            "You are a personal assistant. Remember what the user asks you to (kv_set, kv_get) "
            "and, when asked for a reminder or a recurring check, create a schedule that posts "
            "the reminder to this session at the right time. Confirm each schedule with its "
            "next firing time."
        ),
        fields={
            "display_name": "Reminder assistant",
            "description": "Remembers facts and schedules reminders to its own session.",
            "harness": "generic",
            "tags": ["productivity", "example"],
            "capabilities": list(_caps("key_value", "session_schedule")),
        },
    ),
    AgentExample(
        name="weather-demo",
        system_prompt=(
            "You answer questions about the weather with get_weather and do arithmetic with "
            "the math tools (add, subtract, multiply, divide). The weather is demo data: say "
            "so when you report it."
        ),
        fields={
            "display_name": "Weather demo",
            "description": "Tool calling without network or keys: deterministic demo weather "
            "and arithmetic tools.",
            "harness": "base",
            "tags": ["demo", "example"],
            "capabilities": list(_caps("test_weather", "test_math")),
        },
    ),
)

_AGENT_EXAMPLES_BY_NAME = {example.name: example for example in AGENT_EXAMPLES}


def agent_example(name: str) -> AgentExample | None:
    return _AGENT_EXAMPLES_BY_NAME.get(name)
