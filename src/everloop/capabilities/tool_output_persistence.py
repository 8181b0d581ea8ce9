"""Capability ``tool_output_persistence``: a big tool result is saved whole to a file, and the
model reads its head, its tail and where the rest is.

A fetched page or a long listing can fill the model's context in one call. While this capability
is active, a successful server-side result whose text (what the model would read: strings as
they are, anything else as compact JSON) is over ``threshold_bytes`` is written to the session's
workspace at ``/outputs/<tool call id>.txt``, and the call's recorded result (its
``tool.completed``, hence the transcript) becomes a short text: the first ``head_chars`` and last
``tail_chars`` characters, the size and the path, and how to read the rest (``read_file`` with
line ``offset``/``limit``, ``grep``: the ``file_system`` capability, a dependency).

The file is what the model would have read, byte for byte, except that a JSON result is written
indented (``json.dumps(indent=2)``), so ``read_file`` can page through it line by line. A single
string value still stays on one line; ``read_file`` shows a line's first 256 KiB only.

The write is a ``ResultFilter``: it runs in the step transaction that records the call, so the
file and the record that points at it commit together; a re-run after a crash overwrites the
same path with the same content. Errors are not saved. If the file cannot be written (the
workspace is archived, full, or the file is over the per-file limit) the model is told so and
still gets only the head and the tail. Client-side tool results (posted by the client) are not
filtered: they are recorded as posted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from everloop.capabilities.base import Capability, ToolContext
from everloop.domain.messages import JsonObject, JsonValue, ToolResultPart, json_text
from everloop.errors import EverloopError
from everloop.store import workspaces as workspace_store
from everloop.store.workspace_files import FileLimits, Workspace

CAPABILITY_ID = "tool_output_persistence"
OUTPUTS_DIR = "/outputs"
DEFAULT_THRESHOLD_BYTES = 16 * 1024
DEFAULT_HEAD_CHARS = 2000
DEFAULT_TAIL_CHARS = 1000

CONFIG_SCHEMA: JsonObject = {
    "type": "object",
    "properties": {
        "threshold_bytes": {
            "type": "integer",
            "minimum": 1024,
            "description": "A result whose text is longer than this many bytes (UTF-8) is "
            f"saved to {OUTPUTS_DIR}/<tool call id>.txt (default {DEFAULT_THRESHOLD_BYTES}).",
        },
        "head_chars": {
            "type": "integer",
            "minimum": 0,
            "maximum": 100_000,
            "description": "Characters of the start the model sees "
            f"(default {DEFAULT_HEAD_CHARS}).",
        },
        "tail_chars": {
            "type": "integer",
            "minimum": 0,
            "maximum": 100_000,
            "description": f"Characters of the end the model sees (default {DEFAULT_TAIL_CHARS}).",
        },
    },
    "additionalProperties": False,
}

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class OutputPolicy:
    """The capability's config with its defaults (validated against ``CONFIG_SCHEMA``)."""

    threshold_bytes: int = DEFAULT_THRESHOLD_BYTES
    head_chars: int = DEFAULT_HEAD_CHARS
    tail_chars: int = DEFAULT_TAIL_CHARS

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OutputPolicy:
        return cls(
            int(config.get("threshold_bytes", DEFAULT_THRESHOLD_BYTES)),
            int(config.get("head_chars", DEFAULT_HEAD_CHARS)),
            int(config.get("tail_chars", DEFAULT_TAIL_CHARS)),
        )


def output_path(tool_call_id: str) -> str:
    """Where a call's output is saved (a provider's call id may hold any character: only
    letters, digits, ``_``, ``.`` and ``-`` are kept as they are)."""
    return f"{OUTPUTS_DIR}/{_UNSAFE.sub('_', tool_call_id)}.txt"


def file_text(result: JsonValue) -> str:
    """What the file holds: a string as it is, anything else as indented JSON."""
    if isinstance(result, str):
        return result
    return json.dumps(result, ensure_ascii=False, indent=2)


def summary(text: str, size_bytes: int, policy: OutputPolicy, saved: str) -> str:
    """The text the model reads instead of ``text``: ``saved`` says where the rest is (or why
    it is nowhere), then the head and the tail."""
    head_end = min(len(text), policy.head_chars)
    tail_start = max(head_end, len(text) - policy.tail_chars)
    omitted = tail_start - head_end
    return (
        f"[This tool output is {size_bytes} bytes ({len(text)} characters), too long to show "
        f"here. {saved} Below are its first {head_end} and last {len(text) - tail_start} "
        "characters.]\n"
        f"{text[:head_end]}\n"
        f"[... {omitted} characters omitted ...]\n"
        f"{text[tail_start:]}"
    )


@dataclass(frozen=True, slots=True)
class PersistBigOutputs:
    """The ``ResultFilter``: saves a big result to the session's workspace (see the module)."""

    limits: FileLimits = field(repr=False)

    async def __call__(
        self, result: ToolResultPart, config: Mapping[str, Any], context: ToolContext
    ) -> ToolResultPart:
        policy = OutputPolicy.from_config(config)
        if result.error is not None or context.connection is None:
            return result
        if len(json_text(result.result).encode("utf-8")) <= policy.threshold_bytes:
            return result
        text = file_text(result.result)
        content = text.encode("utf-8")
        path = output_path(result.tool_call_id)
        refused = await self._write(context, path, content)
        if refused is not None:
            saved = f"It could not be saved to a file ({refused}), so the rest is lost."
        else:
            lines = text.count("\n") + (0 if text.endswith("\n") else 1)
            saved = (
                f"It was saved whole to the file {path} ({lines} lines). Read the rest with "
                f'read_file(path="{path}", offset=<first line>, limit=<lines>), or search it '
                "with grep."
            )
        shown = summary(text, len(content), policy, saved)
        return ToolResultPart(result.tool_call_id, result.name, shown)

    async def _write(self, context: ToolContext, path: str, content: bytes) -> str | None:
        """Create or overwrite the file (a re-run after a crash writes the same content);
        why it cannot be written, or None."""
        assert context.connection is not None
        conn = context.connection
        workspace_id = await workspace_store.of_session(conn, context.session_id)
        if workspace_id is None:
            return "this session has no workspace"
        if await workspace_store.is_archived(conn, workspace_id):
            return f"workspace {workspace_id} is archived"
        workspace = Workspace(conn, workspace_id, self.limits, writer_session_id=context.session_id)
        savepoint = await conn.begin_nested()  # a refused write leaves nothing behind
        try:
            await workspace.write(path, content)
        except EverloopError as exc:  # over a limit or the quota, or a read-only file there
            await savepoint.rollback()
            return exc.message
        await savepoint.commit()
        return None


def build_tool_output_persistence_capability(limits: FileLimits) -> Capability:
    return Capability(
        id=CAPABILITY_ID,
        name="Tool output persistence",
        description=(
            f"Saves a tool result too big for the context to {OUTPUTS_DIR}/<tool call id>.txt "
            "in the session's files; the model sees its start, its end and the path, and reads "
            "the rest with read_file."
        ),
        category="storage",
        features=("tool_output_persistence",),
        dependencies=("file_system",),
        system_prompt_addition=(
            f"A tool output too long to show is saved whole under {OUTPUTS_DIR}/ and shown cut; "
            "read the rest of it with read_file (or grep) when you need it."
        ),
        config_schema=CONFIG_SCHEMA,
        result_filter=PersistBigOutputs(limits),
    )
