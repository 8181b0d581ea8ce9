"""The filters of an event query (``event_log.EventQuery``) as SQL conditions, per dialect.

Every condition is on one session's events (the caller adds ``session_id = ?``), so a filter
without an index of its own reads at most that session's rows through
``uq_events_session_sequence``. Indexes that serve a filter (migration ``0020_event_search``):

- ``search``: SQLite's FTS5 table ``events_search`` (rowid = the event row's rowid); on
  PostgreSQL the GIN index ``ix_events_search`` on ``to_tsvector('simple', data)``. Both index
  every string value of ``data`` of the events ``INDEXED`` admits (no deltas, no
  ``llm.generation``), case-folded words, no stemming; the conditions below repeat the
  index's expression and predicate exactly.
- ``turn_id`` and ``trace_id`` (the trace id is the turn id): ``ix_events_turn``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

# Events the search indexes: not the deltas (fragments of text their *.completed event carries
# whole), nor those carrying only ids, counters or the prompt (llm.generation). The same
# predicate as the migration's trigger and partial index (0020_event_search).
INDEXED = (
    "type NOT LIKE '%.delta' AND type NOT IN ('llm.generation', 'turn.started', "
    "'turn.completed', 'turn.cancelled', 'reason.started', 'reason.completed', "
    "'output.message.started', 'act.started', 'act.completed', 'session.started', "
    "'session.activated', 'session.idled')"
)
# At most this many words and phrases in a search.
MAX_TERMS = 32


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events of a session to read; every filter set narrows (``where`` spells each
    in SQL per dialect)."""

    after_sequence: int | None = None
    before_sequence: int | None = None
    types: Sequence[str] = ()
    exclude: Sequence[str] = ()
    turn_id: str | None = None
    limit: int = 1000
    newest_first: bool = False
    # Full-text search: words and "quoted phrases" that must all occur (event_filters.terms).
    search: str | None = None
    tool_name: str | None = None
    trace_id: str | None = None
    exec_id: str | None = None
    tags: Sequence[str] = ()
    # ``ts`` bounds, inclusive, in the stored format (``domain.timestamps.format_ts``).
    from_ts: str | None = None
    to_ts: str | None = None


_TERM = re.compile(r'"([^"]*)"|(\S+)')
_WORD = re.compile(r"\w")


def terms(search: str) -> list[str]:
    """The words and "quoted phrases" of a search, each of which must occur; a term with no
    letter or digit in it (punctuation alone) is left out, as neither database indexes one."""
    found = [phrase or word for phrase, word in _TERM.findall(search)]
    return [term for term in found if _WORD.search(term)][:MAX_TERMS]


def where(query: EventQuery, *, postgresql: bool) -> tuple[list[str], list[Any]] | None:
    """The conditions of ``query`` and their parameters; None when it can match nothing (a
    search of punctuation alone)."""
    conds: list[str] = []
    params: list[Any] = []
    if query.after_sequence is not None:
        conds.append("sequence > ?")
        params.append(query.after_sequence)
    if query.before_sequence is not None:
        conds.append("sequence < ?")
        params.append(query.before_sequence)
    if query.types:
        conds.append(f"type IN ({_marks(query.types)})")
        params.extend(query.types)
    if query.exclude:
        conds.append(f"type NOT IN ({_marks(query.exclude)})")
        params.extend(query.exclude)
    if query.turn_id:
        conds.append("turn_id = ?")
        params.append(query.turn_id)
    if query.trace_id:
        # Everloop's trace is the turn (context.trace_id == context.turn_id, as in Everruns):
        # the turn's index finds the rows, the context says the trace.
        conds.append(f"turn_id = ? AND {_context('trace_id', postgresql)} = ?")
        params.extend((query.trace_id, query.trace_id))
    if query.exec_id:
        conds.append(f"{_context('exec_id', postgresql)} = ?")
        params.append(query.exec_id)
    if query.from_ts is not None:
        conds.append("ts >= ?")
        params.append(query.from_ts)
    if query.to_ts is not None:
        conds.append("ts <= ?")
        params.append(query.to_ts)
    if query.tags:
        if postgresql:
            conds.append("jsonb_exists_any(tags, CAST(? AS text[]))")
            params.append(list(query.tags))
        else:
            conds.append(
                "EXISTS (SELECT 1 FROM json_each(events.tags) "
                f"WHERE value IN ({_marks(query.tags)}))"
            )
            params.extend(query.tags)
    if query.tool_name:
        cond, values = _tool_name(query.tool_name, postgresql)
        conds.append(cond)
        params.extend(values)
    if query.search is not None:
        found = terms(query.search)
        if not found:
            return None
        conds.append(INDEXED)
        if postgresql:
            wanted = " && ".join("phraseto_tsquery('simple'::regconfig, ?)" for _ in found)
            conds.append(f"to_tsvector('simple'::regconfig, data) @@ ({wanted})")
            params.extend(found)
        else:
            conds.append("rowid IN (SELECT rowid FROM events_search WHERE events_search MATCH ?)")
            # Each term a quoted FTS5 string (a phrase of its tokens): no operator or syntax
            # error whatever the input; juxtaposed phrases must all match.
            params.append(" ".join('"' + term.replace('"', '""') + '"' for term in found))
    return conds, params


def _marks(values: Any) -> str:
    return ", ".join("?" for _ in values)


def _context(key: str, postgresql: bool) -> str:
    return f"context ->> '{key}'" if postgresql else f"json_extract(context, '$.{key}')"


def _tool_name(name: str, postgresql: bool) -> tuple[str, list[Any]]:
    """Events about a call of tool ``name``: ``tool.started`` (``tool_call.name``),
    ``tool.completed`` and ``transcript.repaired`` (``tool_name``), ``act.started`` and
    ``tool.call_requested`` (``tool_calls[].name``), ``llm.generation`` (the calls the model
    made, ``output.tool_calls[].name``)."""
    if postgresql:
        calls = Jsonb([{"name": name}])
        return (
            "(data ->> 'tool_name' = ? OR data #>> '{tool_call,name}' = ? "
            "OR data -> 'tool_calls' @> ? OR data #> '{output,tool_calls}' @> ?)",
            [name, name, calls, calls],
        )
    called = (
        "EXISTS (SELECT 1 FROM json_each(events.data, '{path}') "
        "WHERE CASE WHEN type = 'object' THEN json_extract(value, '$.name') END = ?)"
    )
    return (
        "(json_extract(data, '$.tool_name') = ? OR json_extract(data, '$.tool_call.name') = ? "
        f"OR {called.format(path='$.tool_calls')} OR {called.format(path='$.output.tool_calls')})",
        [name, name, name, name],
    )
