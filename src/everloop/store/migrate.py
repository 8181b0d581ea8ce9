"""Schema migrations, run at start-up (Alembic, scripts in ``store/migrations``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def sync_url(url: str) -> str:
    """The synchronous driver URL for an async one (Alembic runs synchronously)."""
    return url.replace("sqlite+aiosqlite://", "sqlite://")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade(database_url: str) -> None:
    """Bring the app schema at ``database_url`` to the newest revision."""
    engine = create_engine(sync_url(database_url))
    try:
        with engine.begin() as connection:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "heads")
    finally:
        engine.dispose()
