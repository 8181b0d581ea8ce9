"""The schema revision this code needs, apart from Alembic and SQLAlchemy (which are slow to
import): ``store/migrate.py`` migrates to it, and quick readers (``store/token_listing.py``)
check a database is at it before reading it with the standard library."""

from __future__ import annotations

from typing import Final

# The head revision(s) of ``store/migrations/versions``; a new migration changes this
# (tests/store/test_migrations.py checks it against the scripts).
HEADS: Final[frozenset[str]] = frozenset({"0030_audit_log"})
