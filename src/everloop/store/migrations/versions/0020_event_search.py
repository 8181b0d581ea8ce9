"""events: full-text search over an event's text (``q``) and ``ix_events_turn`` (``turn_id``)

The text of an event is every string value in its ``data`` (message text, tool names, arguments
and results, errors, ...), keys and numbers left out; delta events (``*.delta``: fragments of
text their ``*.completed`` event carries whole) are not indexed, nor the events with only ids
and counters or the prompt (``llm.generation``), which keeps the index off the
hot path of streaming. Tokens are case-folded words, no stemming, on both databases.

- SQLite: ``events_search``, a contentless FTS5 table (the text is not stored twice, only
  indexed) whose rowid is the event row's rowid, filled by an ``AFTER INSERT`` trigger in the
  appending transaction. ``events`` has no ``INTEGER PRIMARY KEY``, but it is append-only
  (triggers refuse ``UPDATE`` and ``DELETE``) and a rolled-back insert takes no rowid, so its
  rowids are dense and stay what they are, ``VACUUM`` included. No delete trigger: there are
  no deletes.
- PostgreSQL: ``ix_events_search``, a partial GIN expression index on
  ``to_tsvector('simple', data)`` (string values of the JSONB only);
  ``store/event_search.py`` queries the same expression and predicate.

``ix_events_turn`` (partial, events of a turn) serves ``turn_id`` and ``trace_id`` (the trace id
is the turn id), which read one turn of a long session. Existing events are indexed here.

Revision ID: 0020_event_search
Revises: 0022_user_connections
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_event_search"
down_revision: str | None = "0022_user_connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Events searched: not the deltas (fragments of text their *.completed event carries whole),
# nor the events that carry only ids, counters or the prompt (llm.generation: its system prompt
# and tool list would match every generation). store/event_filters.py has the same predicate.
SKIPPED = (
    "'llm.generation', 'turn.started', 'turn.completed', 'turn.cancelled', 'reason.started', "
    "'reason.completed', 'output.message.started', 'act.started', 'act.completed', "
    "'session.started', 'session.activated', 'session.idled'"
)


def indexed(row: str = "") -> str:
    return f"{row}type NOT LIKE '%.delta' AND {row}type NOT IN ({SKIPPED})"


TEXT_OF_NEW = "SELECT group_concat(value, ' ') FROM json_tree(new.data) WHERE type = 'text'"


def upgrade() -> None:
    in_turn = sa.text("turn_id IS NOT NULL")
    op.create_index(
        "ix_events_turn",
        "events",
        ["turn_id", "sequence"],
        sqlite_where=in_turn,
        postgresql_where=in_turn,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_events_search ON events "
            f"USING gin (to_tsvector('simple'::regconfig, data)) WHERE {indexed()}"
        )
        return
    op.execute(
        "CREATE VIRTUAL TABLE events_search USING fts5("
        "body, content='', columnsize=0, tokenize='unicode61 remove_diacritics 0')"
    )
    op.execute(
        f"CREATE TRIGGER events_search_insert AFTER INSERT ON events WHEN {indexed('new.')} "
        f"BEGIN INSERT INTO events_search (rowid, body) SELECT new.rowid, ({TEXT_OF_NEW}); END"
    )
    op.execute(
        "INSERT INTO events_search (rowid, body) SELECT e.rowid, (SELECT group_concat(value, ' ') "
        f"FROM json_tree(e.data) WHERE type = 'text') FROM events AS e WHERE {indexed('e.')}"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_events_search")
    else:
        op.execute("DROP TRIGGER IF EXISTS events_search_insert")
        op.execute("DROP TABLE IF EXISTS events_search")
    op.drop_index("ix_events_turn", table_name="events")
