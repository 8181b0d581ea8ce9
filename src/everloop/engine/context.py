"""What a running turn keeps in memory: its configuration, read once per turn, and the
session's conversation history, read incrementally across turns.

A turn used to re-read its session's configuration (session row, harness chain, agent layer,
message controls), re-resolve its model and re-read the whole conversation in every step; the
conversation read grew with the session. Now:

- ``TurnContext`` holds what a turn runs with, loaded at its first step in this process and
  dropped when the turn ends. A turn runs with the configuration it started with.
- ``Transcripts`` folds each session's history events (``input.message``,
  ``output.message.completed``, ``tool.completed``) as they are appended and reads only the
  events after the last one it folded: the log is append-only and ordered by a gapless
  sequence, so a folded prefix never changes. It keeps a bounded number of sessions (least
  recently used first out); a session it dropped is read again from the start.
- A ``context.compacted`` event is a checkpoint (``engine.compaction``): from a checkpoint's
  basis the turns it covers are one summary message. Which basis a turn reads from is part of
  its recorded state, so the same history comes back after a crash.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.capabilities.base import Tool
from everloop.domain.budgets import BudgetBlock
from everloop.domain.messages import Message, TextPart, ToolResultPart, message_from_json
from everloop.domain.runtime_agent import Controls, RuntimeAgent
from everloop.domain.secret_refs import Redactor
from everloop.engine.ports import ResolvedModel
from everloop.store import turns as turn_store

TRANSCRIPT_SESSIONS = 128


@dataclass(slots=True)
class TurnContext:
    """A turn's configuration as it started (see the module docstring)."""

    session_id: str
    turn_id: str
    org_id: str
    input_message_id: str
    config: turn_store.SessionConfig
    controls: Controls
    runtime: RuntimeAgent | None  # None: the configuration does not assemble (turn fails)
    # The session's AGENTS.md as a system prompt part (capability ``agent_instructions``).
    instructions: str | None = None
    server_tools: dict[str, Tool] = field(default_factory=dict)
    # The MCP tools offered to the model (from cached listings), by name; None: not listed yet.
    remote_tools: Mapping[str, Tool] | None = None
    model: ResolvedModel | None = None
    # The history before the turn, from the basis ``history_basis`` (``TurnState.basis``).
    history: tuple[Message, ...] | None = None
    history_basis: str | None = None
    # The session's secrets, read when the turn first needs them (``TurnEnv.redactor``).
    redactor: Redactor | None = None
    # A subagent's ancestors, nearest first (read once, when its first model call is recorded).
    ancestors: tuple[str, ...] | None = None
    # What the budgets said in the transaction that opened the current reason phase (None:
    # nothing stops the call, or not known: the phase was replayed).
    budget_block: BudgetBlock | None = None
    budget_checked: bool = False
    # This process ran the turn's first step itself (it was not recorded before): no later
    # step can have a record yet (see ``StepRecorder.once``).
    fresh: bool = False
    # The current model call's prompt as counted before it (``engine.compaction``), to be
    # compared with what the provider reports; None when not counted.
    counted_prompt: int | None = None


SUMMARY_HEADER = (
    "[The earlier part of this conversation was compacted to save context. A summary of it "
    "follows; the messages after this one are verbatim.]\n\n"
)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A compaction checkpoint (a ``context.compacted`` event): the turns up to and including
    ``through_turn`` are seen by the model as ``summary`` from then on."""

    id: str
    made_in: str  # the turn that compacted
    through_turn: str
    summary: Message


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the model sees before a turn's own messages, from one basis (``TurnState.basis``):
    ``summary`` (the checkpoint's, if any) then ``turns`` verbatim, each as (turn id, messages);
    ``user_message`` is the turn's input."""

    basis: str | None
    summary: Message | None
    turns: tuple[tuple[str, tuple[Message, ...]], ...]
    user_message: Message

    @property
    def history(self) -> tuple[Message, ...]:
        head = (self.summary,) if self.summary is not None else ()
        return (*head, *(m for _, messages in self.turns for m in messages))


@dataclass(frozen=True, slots=True)
class NextHistory:
    """The history a new turn would start with (``_Transcript.next_conversation``): the newest
    checkpoint (if any), whose summary stands for the turns up to its ``through_turn``, then
    every later turn verbatim, each as (turn id, its number in the session from 1, messages)."""

    checkpoint: Checkpoint | None
    turns: tuple[tuple[str, int, tuple[Message, ...]], ...]

    @property
    def history(self) -> tuple[Message, ...]:
        head = (self.checkpoint.summary,) if self.checkpoint is not None else ()
        return (*head, *(m for _, _, messages in self.turns for m in messages))


@dataclass(slots=True)
class _Transcript:
    through: int = 0  # the last sequence folded
    order: list[str] = field(default_factory=list)  # turn ids, in input order
    position: dict[str, int] = field(default_factory=dict)  # turn id -> index in ``order``
    inputs: dict[str, Message] = field(default_factory=dict)
    replies: dict[str, list[Message]] = field(default_factory=dict)
    results: dict[str, dict[str, ToolResultPart]] = field(default_factory=dict)
    built: dict[str, tuple[Message, ...]] = field(default_factory=dict)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)  # in log order
    dropped: int = 0  # the turns ``order[:dropped]`` have no messages here any more

    def fold(self, rows: list[tuple[int, str, str | None, Any]]) -> None:
        for sequence, kind, turn_id, data in rows:
            self.through = sequence
            if turn_id is None:
                continue
            if kind == "context.compacted":
                self._checkpoint(turn_id, data)
                continue
            self.built.pop(turn_id, None)
            if kind == "input.message":
                self.position[turn_id] = len(self.order)
                self.order.append(turn_id)
                self.inputs[turn_id] = message_from_json(data["message"])
            elif kind == "output.message.completed":
                self.replies.setdefault(turn_id, []).append(message_from_json(data["message"]))
            else:
                self.results.setdefault(turn_id, {})[data["tool_call_id"]] = _result_part(data)

    def _checkpoint(self, turn_id: str, data: dict[str, Any]) -> None:
        checkpoint_id = str(data["checkpoint_id"])
        summary = summary_message(checkpoint_id, str(data["summary"]))
        previous = next(reversed(self.checkpoints.values()), None)
        self.checkpoints[checkpoint_id] = Checkpoint(
            checkpoint_id, turn_id, str(data["through_turn_id"]), summary
        )
        if previous is not None:
            # No turn reads from before the previous checkpoint any more (the running turn
            # reads from it at the oldest): the messages it covers are dropped, so a session
            # of any length keeps only its recent turns here.
            for covered in self.order[self.dropped : self.position[previous.through_turn] + 1]:
                for messages in (self.inputs, self.replies, self.results, self.built):
                    messages.pop(covered, None)
            self.dropped = max(self.dropped, self.position[previous.through_turn] + 1)

    def latest_basis(self, turn_id: str) -> str | None:
        """The newest checkpoint made before or in ``turn_id`` (a new turn reads from it)."""
        here = self.position[turn_id]
        for checkpoint in reversed(self.checkpoints.values()):
            if self.position.get(checkpoint.made_in, here + 1) <= here:
                return checkpoint.id
        return None

    def conversation(self, turn_id: str, basis: str | None) -> Conversation:
        """The turns before ``turn_id`` as seen from ``basis``, and its input."""
        if turn_id not in self.inputs:
            raise LookupError(f"turn {turn_id} has no input message")
        start, summary = 0, None
        if basis is not None:
            checkpoint = self.checkpoints.get(basis)
            if checkpoint is None:
                raise LookupError(f"turn {turn_id}: unknown compaction checkpoint {basis}")
            start, summary = self.position[checkpoint.through_turn] + 1, checkpoint.summary
        turns = []
        for earlier in self.order[start : self.position[turn_id]]:
            built = self.built.get(earlier)
            if built is None:
                built = self.built[earlier] = self._turn_messages(earlier)
            turns.append((earlier, built))
        return Conversation(basis, summary, tuple(turns), self.inputs[turn_id])

    def next_conversation(self) -> NextHistory:
        """The history a turn started now would get: from the newest checkpoint (a new turn
        reads from it, ``latest_basis``), every turn after the turns it covers."""
        checkpoint = next(reversed(self.checkpoints.values()), None)
        start = self.position[checkpoint.through_turn] + 1 if checkpoint is not None else 0
        turns = []
        for index in range(start, len(self.order)):
            turn_id = self.order[index]
            built = self.built.get(turn_id)
            if built is None:
                built = self.built[turn_id] = self._turn_messages(turn_id)
            turns.append((turn_id, index + 1, built))
        return NextHistory(checkpoint, tuple(turns))

    def _turn_messages(self, turn_id: str) -> tuple[Message, ...]:
        # Tool results of one act phase become one ``tool_result`` message; calls a cancelled
        # turn left without a result get a synthetic error result so the transcript stays
        # well-formed.
        messages = [self.inputs[turn_id]]
        answered = self.results.get(turn_id, {})
        for reply in self.replies.get(turn_id, []):
            messages.append(reply)
            calls = reply.tool_calls
            if calls:
                parts = tuple(
                    answered.get(call.id)
                    or ToolResultPart(
                        call.id, call.name, None, "the tool call did not finish (turn ended)"
                    )
                    for call in calls
                )
                messages.append(Message(_results_id(reply.id), "tool_result", parts))
        return tuple(messages)


class Transcripts:
    """Conversation histories of recently active sessions (see the module docstring)."""

    def __init__(self, max_sessions: int = TRANSCRIPT_SESSIONS) -> None:
        self._max = max_sessions
        self._sessions: OrderedDict[str, _Transcript] = OrderedDict()

    async def conversation(
        self,
        conn: AsyncConnection,
        session_id: str,
        *,
        before_turn: str,
        basis: str | None = None,
        latest: bool = False,
    ) -> Conversation:
        """The history before ``before_turn`` from ``basis`` (or, ``latest``, from the newest
        checkpoint made before or in that turn) and the turn's input message."""
        transcript = self._sessions.pop(session_id, None) or _Transcript()
        rows = await turn_store.history_rows(conn, session_id, after_sequence=transcript.through)
        transcript.fold(rows)
        self._sessions[session_id] = transcript
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        if latest and before_turn in transcript.position:
            basis = transcript.latest_basis(before_turn)
        return transcript.conversation(before_turn, basis)


async def next_history(conn: AsyncConnection, session_id: str) -> NextHistory:
    """The history the session's next turn would start with, folded afresh from the log (for
    views such as the context report; running turns use ``Transcripts``)."""
    transcript = _Transcript()
    transcript.fold(await turn_store.history_rows(conn, session_id))
    return transcript.next_conversation()


def summary_message(checkpoint_id: str, summary: str) -> Message:
    """How the model sees a checkpoint's summary: a user message before the turns after it."""
    message_id = "message_" + hashlib.sha256(f"{checkpoint_id}:summary".encode()).hexdigest()[:32]
    return Message(message_id, "user", (TextPart(SUMMARY_HEADER + summary),))


def _results_id(reply_id: str) -> str:
    return "message_" + hashlib.sha256(f"{reply_id}:results".encode()).hexdigest()[:32]


def _result_part(data: dict[str, Any]) -> ToolResultPart:
    result = data.get("result")
    if isinstance(result, list):
        texts = [p.get("text", "") for p in result if isinstance(p, dict)]
        result = "".join(texts)
    return ToolResultPart(data["tool_call_id"], data.get("tool_name"), result, data.get("error"))
