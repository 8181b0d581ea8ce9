"""The audit log: ``audit_events``, append-only in the database, and ``audit_retention``.

UPDATE of a record is refused; DELETE is refused unless the record is older than the retention
in ``audit_retention`` (one row, written by the server at start from
``EVERLOOP_AUDIT_RETENTION_DAYS``; without it, a hundred years), so only the pruning of expired
records can remove any.

Revision ID: 0030_audit_log
Revises: 0029_org_roles
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0030_audit_log"
down_revision: str | None = "0029_org_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Id = sa.String(48)
Ts = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", Id, primary_key=True),
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("actor_principal_id", Id, nullable=False),
        sa.Column("actor_user_id", sa.String(64), nullable=True),
        sa.Column("actor_kind", sa.String(20), nullable=False),
        sa.Column("action", sa.String(120), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("target_type", sa.String(60), nullable=False),
        sa.Column("target_id", sa.String(200), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("changes", Json, nullable=True),
        sa.Column("request_id", sa.String(100), nullable=True),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index(
        "ix_audit_events_org_time", "audit_events", ["organization_id", "created_at", "id"]
    )
    op.create_index("ix_audit_events_target", "audit_events", ["organization_id", "target_id"])
    op.create_table(
        "audit_retention",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("days", sa.Integer, nullable=False),
    )
    op.execute("INSERT INTO audit_retention (id, days) VALUES (1, 90)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
            BEGIN
              IF TG_OP = 'DELETE' AND OLD.created_at < to_char(
                   (now() AT TIME ZONE 'UTC')
                   - make_interval(days => COALESCE(
                       (SELECT days FROM audit_retention WHERE id = 1), 36500)),
                   'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') THEN
                RETURN OLD;
              END IF;
              RAISE EXCEPTION 'audit records are append-only';
            END; $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
            "WHEN OLD.created_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', "
            "'-' || COALESCE((SELECT days FROM audit_retention WHERE id = 1), 36500) || ' days') "
            "BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
    op.drop_table("audit_retention")
    op.drop_table("audit_events")
