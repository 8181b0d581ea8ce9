"""Capability ``agent_instructions``: the session's ``/AGENTS.md`` joins the system prompt.

``AGENTS.md`` is the convention coding agents share for instructions that belong to a project
rather than to an agent: a user (or the agent, through ``file_system``) writes it at the root
of the session's files, and each turn reads it once, when the turn's context is built
(``engine.env.TurnEnv.context``), and appends it to the system prompt. A change applies from
the next turn, as any configuration does. Without the capability nothing is read.

The file is bounded (``MAX_INSTRUCTIONS_BYTES``): a longer one is cut, with a note saying so,
rather than refused, so a large file cannot crowd out the conversation or fail turns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import Capability
from everloop.store import files as file_store
from everloop.store import workspaces as workspace_store

AGENT_INSTRUCTIONS_ID: Final = "agent_instructions"
INSTRUCTIONS_PATH: Final = "/AGENTS.md"
MAX_INSTRUCTIONS_BYTES: Final = 32 * 1024


def is_active(capability_refs: Iterable[str]) -> bool:
    return AGENT_INSTRUCTIONS_ID in capability_refs


def instructions_section(content: bytes) -> str | None:
    """The system prompt's part for ``content``, the file's bytes: cut to the bound (on a
    character boundary) with a note; None for an empty file."""
    cut = content[:MAX_INSTRUCTIONS_BYTES]
    text = cut.decode("utf-8", errors="ignore" if len(content) > len(cut) else "replace")
    text = text.strip()
    if not text:
        return None
    note = ""
    if len(content) > MAX_INSTRUCTIONS_BYTES:
        note = (
            f"\n\n[{INSTRUCTIONS_PATH} is {len(content)} bytes; only its first "
            f"{MAX_INSTRUCTIONS_BYTES} bytes are shown. Read the file for the rest.]"
        )
    return (
        f"Instructions from {INSTRUCTIONS_PATH} (at the root of this session's files; follow "
        f"them unless the user says otherwise):\n\n{text}{note}"
    )


async def load_instructions(conn: AsyncConnection, session_id: str) -> str | None:
    """The system prompt's part from the session's ``/AGENTS.md``, or None when there is no
    such file (or it is empty or a directory)."""
    workspace_id = await workspace_store.of_session(conn, session_id)
    if workspace_id is None:
        return None
    entry = await file_store.get(conn, workspace_id, INSTRUCTIONS_PATH)
    if entry is None or entry.is_directory or entry.content is None:
        return None
    return instructions_section(entry.content)


def build_agent_instructions_capability() -> Capability:
    return Capability(
        id=AGENT_INSTRUCTIONS_ID,
        name="Agent instructions (AGENTS.md)",
        description=(
            f"Appends the session's {INSTRUCTIONS_PATH} (at the root of its files) to the "
            f"system prompt of each turn (at most {MAX_INSTRUCTIONS_BYTES // 1024} KiB)."
        ),
        category="context",
        # What a file says becomes instructions: a file the agent wrote from untrusted content
        # (a web page, a tool result) would steer every later turn.
        risk_level="medium",
    )
