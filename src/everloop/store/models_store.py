"""Queries of the providers and models tables (both dialects).

Every lookup is scoped to an organization: another org's provider or model is not found. The
encrypted credentials column is read only through ``provider_credentials``; the ``Provider``
value carries no more than whether it is set.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, delete, func, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.providers import LlmModel, Provider
from everloop.store.tables import events, models, providers, sessions

# The expression and predicate of ``ix_events_generation_model`` (migration 0019), as literals:
# an expression index serves only a query spelling them the same way.
_CALLED_MODEL: dict[str, ColumnElement[str]] = {
    "postgresql": literal_column("(events.data #>> '{metadata,model_id}')", String),
    "sqlite": literal_column("json_extract(events.data, '$.metadata.model_id')", String),
}
_GENERATION = text("events.type = 'llm.generation'")

_PROVIDER_COLUMNS = [c for c in providers.c if c.name != "credentials_encrypted"]


def _provider(row: Any) -> Provider:
    values = dict(row._mapping)
    values["credentials_set"] = bool(values.pop("credentials_set"))
    return Provider(**values)


def _model(row: Any) -> LlmModel:
    return LlmModel(**dict(row._mapping))


def _provider_select() -> Any:
    return select(
        *_PROVIDER_COLUMNS,
        providers.c.credentials_encrypted.is_not(None).label("credentials_set"),
    )


class ModelStore:
    """Rows of ``providers`` and ``models``."""

    # -- providers -------------------------------------------------------------------------

    async def insert_provider(self, conn: AsyncConnection, values: dict[str, Any]) -> None:
        await conn.execute(providers.insert().values(**values))

    async def get_provider(
        self, conn: AsyncConnection, org_id: str, provider_id: str
    ) -> Provider | None:
        row = (
            await conn.execute(
                _provider_select().where(
                    providers.c.organization_id == org_id, providers.c.id == provider_id
                )
            )
        ).first()
        return _provider(row) if row else None

    async def built_in_provider(self, conn: AsyncConnection, org_id: str) -> Provider | None:
        row = (
            await conn.execute(
                _provider_select().where(
                    providers.c.organization_id == org_id, providers.c.is_built_in.is_(True)
                )
            )
        ).first()
        return _provider(row) if row else None

    async def list_providers(self, conn: AsyncConnection, org_id: str) -> list[Provider]:
        rows = await conn.execute(
            _provider_select()
            .where(providers.c.organization_id == org_id)
            .order_by(providers.c.is_built_in.desc(), providers.c.created_at, providers.c.id)
        )
        return [_provider(r) for r in rows]

    async def provider_credentials(
        self, conn: AsyncConnection, org_id: str, provider_id: str
    ) -> str | None:
        """The sealed credentials token of a provider (see ``crypto.SecretBox``)."""
        return await conn.scalar(
            select(providers.c.credentials_encrypted).where(
                providers.c.organization_id == org_id, providers.c.id == provider_id
            )
        )

    async def update_provider(
        self, conn: AsyncConnection, org_id: str, provider_id: str, values: dict[str, Any]
    ) -> None:
        await conn.execute(
            update(providers)
            .where(providers.c.organization_id == org_id, providers.c.id == provider_id)
            .values(**values)
        )

    async def delete_provider(self, conn: AsyncConnection, org_id: str, provider_id: str) -> None:
        await conn.execute(
            delete(providers).where(
                providers.c.organization_id == org_id, providers.c.id == provider_id
            )
        )

    async def count_models(self, conn: AsyncConnection, provider_id: str) -> int:
        count = await conn.scalar(
            select(func.count()).select_from(models).where(models.c.provider_id == provider_id)
        )
        return count or 0

    # -- models ----------------------------------------------------------------------------

    async def insert_model(self, conn: AsyncConnection, values: dict[str, Any]) -> None:
        await conn.execute(models.insert().values(**values))

    async def get_model(self, conn: AsyncConnection, org_id: str, model_id: str) -> LlmModel | None:
        row = (
            await conn.execute(
                select(models).where(models.c.organization_id == org_id, models.c.id == model_id)
            )
        ).first()
        return _model(row) if row else None

    async def built_in_model(self, conn: AsyncConnection, org_id: str) -> LlmModel | None:
        row = (
            await conn.execute(
                select(models)
                .where(models.c.organization_id == org_id, models.c.is_built_in.is_(True))
                .order_by(models.c.created_at)
                .limit(1)
            )
        ).first()
        return _model(row) if row else None

    async def list_models(
        self, conn: AsyncConnection, org_id: str, *, provider_id: str | None = None
    ) -> list[LlmModel]:
        query = select(models).where(models.c.organization_id == org_id)
        if provider_id is not None:
            query = query.where(models.c.provider_id == provider_id)
        rows = await conn.execute(
            query.order_by(models.c.is_built_in.desc(), models.c.created_at, models.c.id)
        )
        return [_model(r) for r in rows]

    async def wire_name_taken(
        self,
        conn: AsyncConnection,
        provider_id: str,
        wire_model_id: str,
        *,
        except_id: str | None = None,
    ) -> bool:
        query = select(models.c.id).where(
            models.c.provider_id == provider_id, models.c.model_id == wire_model_id
        )
        if except_id is not None:
            query = query.where(models.c.id != except_id)
        return (await conn.scalar(query)) is not None

    async def update_model(
        self, conn: AsyncConnection, org_id: str, model_id: str, values: dict[str, Any]
    ) -> None:
        await conn.execute(
            update(models)
            .where(models.c.organization_id == org_id, models.c.id == model_id)
            .values(**values)
        )

    async def delete_model(self, conn: AsyncConnection, org_id: str, model_id: str) -> None:
        await conn.execute(
            delete(models).where(models.c.organization_id == org_id, models.c.id == model_id)
        )

    # -- health ----------------------------------------------------------------------------

    async def latest_generation_outcomes(
        self, conn: AsyncConnection, org_id: str, model_ids: list[str]
    ) -> dict[str, bool]:
        """Whether the latest ``llm.generation`` of each model (its ``metadata.model_id``)
        succeeded, over the org's sessions; a model never called is absent. One indexed read
        per model (``ix_events_generation_model``, migration 0019)."""
        called = _CALLED_MODEL[conn.dialect.name]
        outcomes: dict[str, bool] = {}
        for model_id in model_ids:
            success = await conn.scalar(
                select(events.c.data[("metadata", "success")].as_boolean())
                .join(sessions, sessions.c.id == events.c.session_id)
                .where(
                    _GENERATION,
                    called == model_id,
                    sessions.c.organization_id == org_id,
                )
                .order_by(events.c.ts.desc())
                .limit(1)
            )
            if success is not None:
                outcomes[model_id] = bool(success)
        return outcomes
