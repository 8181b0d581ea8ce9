"""Organizations, members and roles: ``owner`` joins ``admin`` and ``member``.

Adds ``organizations.updated_at``, ``users.email`` and ``principals.removed_at`` (a member
removed from an organization keeps its principal, which sessions still name as their owner, but
no longer reaches the organization). An install from before roles had one admin per
organization: the earliest admin user of each organization becomes its owner, so every
organization keeps one.

Revision ID: 0029_org_roles
Revises: 0028_health_checks
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_org_roles"
down_revision: str | None = "0028_health_checks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Ts = sa.String(32)


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("updated_at", Ts, nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email", sa.String(320), nullable=True))
        batch.create_unique_constraint("uq_users_email", ["email"])
    with op.batch_alter_table("principals") as batch:
        batch.add_column(sa.Column("removed_at", Ts, nullable=True))
    op.execute("UPDATE organizations SET updated_at = created_at")
    # The earliest admin user of each organization becomes its owner.
    op.execute(
        """
        UPDATE principals SET role = 'owner'
        WHERE id IN (
            SELECT p.id FROM principals p
            WHERE p.kind = 'user' AND p.role = 'admin'
              AND NOT EXISTS (
                SELECT 1 FROM principals q
                WHERE q.organization_id = p.organization_id AND q.kind = 'user'
                  AND q.role = 'admin'
                  AND (q.created_at < p.created_at
                       OR (q.created_at = p.created_at AND q.id < p.id))
              )
        )
        """
    )


def downgrade() -> None:
    op.execute("UPDATE principals SET role = 'admin' WHERE role = 'owner'")
    with op.batch_alter_table("principals") as batch:
        batch.drop_column("removed_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_email", type_="unique")
        batch.drop_column("email")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("updated_at")
