"""The schema's shared parts: one ``MetaData`` with its naming convention and the column types
every table uses (timestamps as RFC 3339 strings, JSON as JSONB on PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import JSON, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Ts = String(32)
Id = String(48)
