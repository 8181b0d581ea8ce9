"""merge the feature branches (0005-0010) into one head

Revision ID: 0011
Revises: 0005, 0006, 0007, 0008, 0009, 0010
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0011"
down_revision: str | Sequence[str] | None = ("0005", "0006", "0007", "0008", "0009", "0010")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
