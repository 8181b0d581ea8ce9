"""Turn rows, exactly-once step records, and the session's conversation history.

A turn's status moves ``queued -> running -> completed | failed | cancelled``; every move is a
guarded update (``WHERE status IN (...)``), so exactly one writer wins each transition and a
turn gets exactly one terminal event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError, NoResultFound
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.messages import JsonValue
from everloop.domain.runtime_agent import Layer
from everloop.domain.timestamps import now
from everloop.domain.usage import TokenUsage
from everloop.store import direct, runtime_layers
from everloop.store.event_log import TurnGuard
from everloop.store.tables import sessions, turns

TERMINAL = ("completed", "failed", "cancelled")
OPEN = ("queued", "running")

HISTORY_EVENT_TYPES = ("input.message", "output.message.completed", "tool.completed")
# What a running turn's transcript is folded from: the messages and compaction checkpoints.
TRANSCRIPT_EVENT_TYPES = (*HISTORY_EVENT_TYPES, "context.compacted")


@dataclass(frozen=True, slots=True)
class TurnRow:
    id: str
    session_id: str
    input_message_id: str
    status: str
    created_at: str


def _turn(row: Any) -> TurnRow:
    return TurnRow(row.id, row.session_id, row.input_message_id, row.status, row.created_at)


async def insert_turn(
    conn: AsyncConnection,
    *,
    turn_id: str,
    session_id: str,
    input_message_id: str,
    input_sequence: int,
) -> None:
    await direct.execute(
        conn,
        direct.connection(conn),
        "INSERT INTO turns (id, session_id, input_message_id, input_sequence, status, "
        "created_at, finished_at) VALUES (?, ?, ?, ?, 'queued', ?, NULL)",
        (turn_id, session_id, input_message_id, input_sequence, now()),
    )


# The statements of a turn's hot path are built once: building a statement and its cache key
# costs more than SQLite takes to run it.
_GET_TURN = select(turns).where(turns.c.id == bindparam("turn_id"))
_SESSION_USAGE = select(
    sessions.c.input_tokens,
    sessions.c.output_tokens,
    sessions.c.cache_read_tokens,
    sessions.c.cache_creation_tokens,
).where(sessions.c.id == bindparam("session_id"))


async def turn_state(conn: AsyncConnection, turn_id: str) -> tuple[str | None, bool]:
    """The turn's status (None if there is no such turn) and whether its session is live."""
    row = await direct.one(
        conn,
        direct.connection(conn),
        "SELECT turns.status, sessions.deleted_at FROM turns JOIN sessions "
        "ON sessions.id = turns.session_id WHERE turns.id = ?",
        (turn_id,),
    )
    return (None, False) if row is None else (str(row[0]), row[1] is None)


async def session_preview(
    conn: AsyncConnection, org_id: str, session_id: str
) -> tuple[str | None, str | None] | None:
    """(preview, status) of the session in the organization; None if it does not exist
    (or is deleted)."""
    row = await direct.one(
        conn,
        direct.connection(conn),
        "SELECT preview, status FROM sessions WHERE id = ? AND organization_id = ? "
        "AND deleted_at IS NULL",
        (session_id, org_id),
    )
    return (row[0], row[1]) if row is not None else None


async def get_turn(conn: AsyncConnection, turn_id: str) -> TurnRow | None:
    row = (await conn.execute(_GET_TURN, {"turn_id": turn_id})).first()
    return _turn(row) if row else None


async def turn_status(conn: AsyncConnection, turn_id: str) -> str | None:
    found: str | None = await direct.scalar(
        conn, direct.connection(conn), "SELECT status FROM turns WHERE id = ?", (turn_id,)
    )
    return found


async def move_turn(
    conn: AsyncConnection, turn_id: str, *, to: str, allowed_from: Sequence[str]
) -> bool:
    """Move a turn to ``to`` if it is in one of ``allowed_from``; whether this call did it."""
    values: dict[str, Any] = {"status": to}
    if to in TERMINAL:
        values["finished_at"] = now()
    sets = ", ".join(f"{name} = ?" for name in values)
    marks = ", ".join("?" for _ in allowed_from)
    changed = await direct.execute(
        conn,
        direct.connection(conn),
        f"UPDATE turns SET {sets} WHERE id = ? AND status IN ({marks})",
        (*values.values(), turn_id, *allowed_from),
    )
    return changed > 0


async def claim_turn(conn: AsyncConnection, session_id: str, turn_id: str) -> str:
    """Let ``turn_id`` run if it is the session's earliest open turn and nothing else runs.

    Returns ``"claimed"`` (moved to running now), ``"running"`` (it already was: a re-run after
    a crash), ``"waiting"`` (an earlier turn is still open, or the session is paused by a
    budget), ``"session deleted"``,
    ``"missing"``, or the turn's terminal status. The caller's transaction holds the database
    write lock (SQLite) or locks the session row (PostgreSQL), so two claims of one session
    never interleave.
    """
    raw = direct.connection(conn)
    await lock_session(conn, session_id)
    row = await direct.one(
        conn,
        raw,
        "SELECT turns.status, sessions.deleted_at, sessions.status FROM turns JOIN sessions "
        "ON sessions.id = turns.session_id WHERE turns.id = ?",
        (turn_id,),
    )
    if row is None:
        return "missing"
    current, deleted_at, session_status = str(row[0]), row[1], row[2]
    if deleted_at is not None:
        return "session deleted"
    if current != "queued":
        return current
    if session_status == "paused":
        # A budget paused the session: its queued turns wait until a resume (which writes
        # budget.resumed to its log and wakes them).
        return "waiting"
    # Move it to running only if it is the session's earliest open turn: one statement (the
    # subquery runs after the lock above, so it sees every claim committed before).
    claimed = await direct.execute(
        conn,
        raw,
        "UPDATE turns SET status = 'running' WHERE id = ? AND status = 'queued' AND id = "
        "(SELECT id FROM turns AS earliest WHERE earliest.session_id = ? "
        "AND earliest.status IN (?, ?) "
        "ORDER BY earliest.input_sequence LIMIT 1)",
        (turn_id, session_id, *OPEN),
    )
    if claimed:
        return "claimed"
    # Rare: an earlier turn is still open (or this one moved meanwhile, e.g. cancelled).
    now_status = await turn_status(conn, turn_id)
    return "waiting" if now_status == "queued" else (now_status or "missing")


async def next_open_turn(conn: AsyncConnection, session_id: str) -> str | None:
    found: str | None = await direct.scalar(
        conn,
        direct.connection(conn),
        "SELECT id FROM turns WHERE session_id = ? AND status IN (?, ?) "
        "ORDER BY input_sequence LIMIT 1",
        (session_id, *OPEN),
    )
    return found


async def open_turns(conn: AsyncConnection, session_id: str) -> list[TurnRow]:
    rows = await conn.execute(
        select(turns)
        .where(turns.c.session_id == session_id, turns.c.status.in_(OPEN))
        .order_by(turns.c.input_sequence)
    )
    return [_turn(r) for r in rows]


async def all_open_turns(conn: AsyncConnection) -> list[TurnRow]:
    rows = await conn.execute(
        select(turns)
        .where(turns.c.status.in_(OPEN))
        .order_by(turns.c.created_at, turns.c.input_sequence)
    )
    return [_turn(r) for r in rows]


async def recorded_effect(
    conn: AsyncConnection, turn_id: str, step_key: str
) -> tuple[bool, JsonValue]:
    raw = direct.connection(conn)
    found = await direct.one(
        conn,
        raw,
        "SELECT result FROM turn_effects WHERE turn_id = ? AND step_key = ?",
        (turn_id, step_key),
    )
    if found is None:
        return False, None
    return True, direct.json_result(raw, found[0])


async def record_effect(
    conn: AsyncConnection, turn_id: str, step_key: str, result: JsonValue
) -> None:
    """Record a step's result in the caller's transaction; a duplicate raises ``IntegrityError``."""
    raw = direct.connection(conn)
    await direct.execute(
        conn,
        raw,
        "INSERT INTO turn_effects (turn_id, step_key, result, created_at) VALUES (?, ?, ?, ?)",
        (turn_id, step_key, direct.json_param(raw, result), now()),
    )


async def add_session_usage(
    conn: AsyncConnection, session_id: str, usage: TokenUsage, *, guard: TurnGuard | None = None
) -> TokenUsage:
    """Add ``usage`` to the session's totals; the new totals. With ``guard``, nothing is
    written and ``TurnHalted`` raised unless the turn is in the guard's state."""
    raw = direct.connection(conn)
    total = await direct.one(
        conn,
        raw,
        "UPDATE sessions SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, "
        "cache_read_tokens = cache_read_tokens + ?, "
        f"cache_creation_tokens = cache_creation_tokens + ? WHERE id = ?"
        f"{guard.sql() if guard else ''} RETURNING input_tokens, output_tokens, "
        "cache_read_tokens, cache_creation_tokens",
        (
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_creation_tokens,
            session_id,
            *(guard.params() if guard else ()),
        ),
    )
    if total is None:
        if guard is not None:
            raise await guard.halted(conn, raw, session_id)
        raise NoResultFound("No row was found when one was required")
    return TokenUsage(int(total[0]), int(total[1]), int(total[2]), int(total[3]))


async def lock_session(conn: AsyncConnection, session_id: str) -> None:
    """On PostgreSQL, lock the session's row until commit (SQLite serializes writers anyway).
    A transaction that changes a turn and then its session's row takes this first: a step
    updates the session's row before its turn's, so the reverse order could deadlock."""
    raw = direct.connection(conn)
    if direct.is_postgresql(raw):
        await direct.one(
            conn, raw, "SELECT id FROM sessions WHERE id = ? FOR UPDATE", (session_id,)
        )


async def session_live(conn: AsyncConnection, session_id: str) -> bool:
    """Whether the session exists and is not deleted."""
    found = await conn.scalar(
        select(sessions.c.id).where(sessions.c.id == session_id, sessions.c.deleted_at.is_(None))
    )
    return found is not None


async def ancestors(conn: AsyncConnection, session_id: str, limit: int = 32) -> list[str]:
    """The session's parent, its parent, ... up to the root of its delegation tree."""
    found: list[str] = []
    current = session_id
    for _ in range(limit):
        row = (
            await conn.execute(select(sessions.c.parent_session_id).where(sessions.c.id == current))
        ).first()
        if row is None or row[0] is None:
            break
        current = str(row[0])
        found.append(current)
    return found


async def add_descendant_usage(
    conn: AsyncConnection, session_ids: Sequence[str], usage: TokenUsage
) -> None:
    """Add a descendant's ``usage`` to the ``descendant_*`` totals of ``session_ids`` (its
    ancestors, nearest first)."""
    if not usage.total_tokens:
        return
    # One row at a time, nearest ancestor first: every transaction that locks several sessions
    # of a tree locks them from the leaves up (see services/subagents.py), so none deadlock.
    for session_id in session_ids:
        await conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id)
            .values(
                descendant_input_tokens=sessions.c.descendant_input_tokens + usage.input_tokens,
                descendant_output_tokens=sessions.c.descendant_output_tokens + usage.output_tokens,
                descendant_cache_read_tokens=sessions.c.descendant_cache_read_tokens
                + usage.cache_read_tokens,
                descendant_cache_creation_tokens=sessions.c.descendant_cache_creation_tokens
                + usage.cache_creation_tokens,
            )
        )


async def session_usage(conn: AsyncConnection, session_id: str) -> TokenUsage:
    row = (await conn.execute(_SESSION_USAGE, {"session_id": session_id})).one()
    return TokenUsage(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


async def update_session(conn: AsyncConnection, session_id: str, values: dict[str, Any]) -> None:
    await conn.execute(update(sessions).where(sessions.c.id == session_id).values(**values))


async def history_rows(
    conn: AsyncConnection, session_id: str, *, after_sequence: int = 0
) -> list[tuple[int, str, str | None, Any]]:
    """(sequence, type, turn id, data) of the session's conversation events and compaction
    checkpoints after ``after_sequence``, in order (see ``engine.context.Transcripts``)."""
    raw = direct.connection(conn)
    marks = ", ".join("?" for _ in TRANSCRIPT_EVENT_TYPES)
    found = await direct.all_rows(
        conn,
        raw,
        "SELECT sequence, type, turn_id, data FROM events WHERE session_id = ? "
        f"AND sequence > ? AND type IN ({marks}) ORDER BY sequence",
        (session_id, after_sequence, *TRANSCRIPT_EVENT_TYPES),
    )
    return [(int(r[0]), str(r[1]), r[2], direct.json_result(raw, r[3])) for r in found]


async def turn_sequences(
    conn: AsyncConnection, session_id: str, turns: tuple[str, str]
) -> tuple[int | None, int | None]:
    """The first conversation event's sequence of ``turns[0]`` and the last of ``turns[1]``:
    the range of the log a compaction checkpoint covers."""
    raw = direct.connection(conn)
    marks = ", ".join("?" for _ in HISTORY_EVENT_TYPES)
    where = f"FROM events WHERE session_id = ? AND turn_id = ? AND type IN ({marks})"
    first = await direct.scalar(
        conn, raw, f"SELECT min(sequence) {where}", (session_id, turns[0], *HISTORY_EVENT_TYPES)
    )
    last = await direct.scalar(
        conn, raw, f"SELECT max(sequence) {where}", (session_id, turns[1], *HISTORY_EVENT_TYPES)
    )
    return (
        None if first is None else int(first),
        None if last is None else int(last),
    )


async def turn_started_at(conn: AsyncConnection, session_id: str, turn_id: str) -> str | None:
    """When the turn started running: its ``turn.started`` event's time (written once, so a turn
    resumed after a crash keeps its first start). Read from the turn's input message on, along
    the session's sequence index."""
    raw = direct.connection(conn)
    found = await direct.scalar(
        conn,
        raw,
        "SELECT e.ts FROM events e JOIN turns t ON t.session_id = e.session_id "
        "WHERE t.id = ? AND e.session_id = ? AND e.sequence > t.input_sequence "
        "AND e.type = 'turn.started' AND e.turn_id = ? ORDER BY e.sequence LIMIT 1",
        (turn_id, session_id, turn_id),
    )
    return None if found is None else str(found)


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One conversation event as a message list needs it."""

    id: str
    sequence: int
    type: str
    ts: str
    turn_id: str | None
    data: Any


async def history_page(
    conn: AsyncConnection, session_id: str, *, offset: int, limit: int | None
) -> tuple[list[HistoryEvent], int]:
    """The session's conversation events from the ``offset``-th, at most ``limit`` (None: all),
    in order, and how many there are in all."""
    raw = direct.connection(conn)
    marks = ", ".join("?" for _ in HISTORY_EVENT_TYPES)
    where = f"FROM events WHERE session_id = ? AND type IN ({marks})"
    params = (session_id, *HISTORY_EVENT_TYPES)
    total = int(await direct.scalar(conn, raw, f"SELECT count(*) {where}", params) or 0)
    found = await direct.all_rows(
        conn,
        raw,
        f"SELECT id, sequence, type, ts, turn_id, data {where} ORDER BY sequence LIMIT ? OFFSET ?",
        (*params, total if limit is None else limit, offset),
    )
    page = [
        HistoryEvent(
            str(r[0]), int(r[1]), str(r[2]), str(r[3]), r[4], direct.json_result(raw, r[5])
        )
        for r in found
    ]
    return page, total


__all__ = ["IntegrityError", "TurnRow"]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """A session with the configuration layers of its harness chain and agent, as a turn
    needs them."""

    id: str
    organization_id: str
    harness_id: str
    agent_id: str | None
    started_at: str | None
    model_id: str | None
    system_prompt: str | None
    capabilities: list[Any]
    tools: list[Any]
    max_iterations: int | None
    parallel_tool_calls: bool | None
    network_access: Any = None
    # The RuntimeAgent's layers (``engine.assembly``): the harness chain root first, the agent
    # as the version the session captured (else as it is now), the session itself, or the
    # blueprint the session was created from.
    agent_version_id: str | None = None
    harness_chain: tuple[Layer, ...] = ()
    agent_layer: Layer | None = None
    session_layer: Layer | None = None
    blueprint_id: str | None = None
    blueprint_config: dict[str, Any] | None = None
    # A subagent's parent and the root of its delegation tree (None for a top-level session).
    parent_session_id: str | None = None
    root_session_id: str | None = None


_SESSION_CONFIG = select(
    sessions.c.id,
    sessions.c.organization_id,
    sessions.c.harness_id,
    sessions.c.agent_id,
    sessions.c.started_at,
    sessions.c.model_id,
    sessions.c.system_prompt,
    sessions.c.capabilities,
    sessions.c.tools,
    sessions.c.max_iterations,
    sessions.c.parallel_tool_calls,
    sessions.c.network_access,
    sessions.c.agent_version_id,
    sessions.c.blueprint_id,
    sessions.c.blueprint_config,
    sessions.c.locale,
    sessions.c.hints,
    sessions.c.initial_files,
    sessions.c.mcp_servers,
    sessions.c.parent_session_id,
    sessions.c.root_session_id,
    sessions.c.capability_allowlist,
).where(sessions.c.id == bindparam("session_id"), sessions.c.deleted_at.is_(None))


async def session_config(conn: AsyncConnection, session_id: str) -> SessionConfig | None:
    row = (await conn.execute(_SESSION_CONFIG, {"session_id": session_id})).first()
    if row is None:
        return None
    values = dict(row._mapping)
    values["session_layer"] = runtime_layers.session_layer(values)
    for key in ("locale", "hints", "initial_files", "mcp_servers", "capability_allowlist"):
        del values[key]
    org_id = values["organization_id"]
    values["harness_chain"] = await runtime_layers.load_harness_chain(
        conn, org_id, values["harness_id"]
    )
    values["agent_layer"] = await runtime_layers.load_agent_layer(
        conn, org_id, values["agent_id"], values["agent_version_id"]
    )
    return SessionConfig(**values)


async def count_queued(conn: AsyncConnection) -> int:
    """Turns accepted and not yet running, in every session (a gauge of ``/metrics``)."""
    found = await conn.execute(
        select(func.count()).select_from(turns).where(turns.c.status == "queued")
    )
    return int(found.scalar_one())
