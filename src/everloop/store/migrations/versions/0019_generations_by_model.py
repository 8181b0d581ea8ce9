"""events: ``ix_events_generation_model``, the ``llm.generation`` events of a model, newest last

A model's ``healthy`` (``GET /v1/models``) is the outcome of its latest generation; this partial
expression index on (``data.metadata.model_id``, ``ts``) finds it without reading the log. The
expression is spelled per dialect, exactly as ``store/models_store.py`` queries it (an expression
index serves only a query with the same expression and literal, not a bound parameter).

Revision ID: 0019_generations_by_model
Revises: 0018_budgets
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019_generations_by_model"
down_revision: str | None = "0018_budgets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRESQL = "(data #>> '{metadata,model_id}')"
SQLITE = "json_extract(data, '$.metadata.model_id')"


def upgrade() -> None:
    called = POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE
    op.execute(
        f"CREATE INDEX ix_events_generation_model ON events ({called}, ts) "
        "WHERE type = 'llm.generation'"
    )


def downgrade() -> None:
    op.drop_index("ix_events_generation_model", table_name="events")
