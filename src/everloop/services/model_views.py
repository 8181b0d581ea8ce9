"""Models as the API presents them: the row, its provider, and what is derived from both.

- ``profile``: what the model can do, from ``domain.model_catalogue``; the row's own token
  limits and prices (org-editable) win over the catalogue's.
- ``enabled``: the model can be chosen, i.e. its provider is active (``ModelService.resolve``
  refuses a disabled provider's models).
- ``healthy``: the model is enabled, has a key where its driver needs one, and its latest
  ``llm.generation`` in the org succeeded (a model never called counts as healthy).
- ``is_favorite``: always false. The published client has no method that stars a model, so no
  favourites are stored.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass

from everloop.domain.model_catalogue import CatalogueProfile, profile_for
from everloop.domain.providers import LlmModel, Provider
from everloop.services.auth import Caller
from everloop.services.models import ModelService
from everloop.store.db import Database
from everloop.store.models_store import ModelStore


@dataclass(frozen=True, slots=True)
class ModelView:
    model: LlmModel
    provider: Provider
    catalogue: CatalogueProfile
    enabled: bool
    healthy: bool
    is_favorite: bool = False


class ModelViews:
    def __init__(self, db: Database, store: ModelStore, models: ModelService) -> None:
        self._db = db
        self._store = store
        self._models = models

    async def list(
        self, caller: Caller, *, provider_id: str | None = None
    ) -> builtins.list[ModelView]:
        return await self.of(caller, await self._models.list(caller, provider_id=provider_id))

    async def get(self, caller: Caller, model_id: str) -> ModelView:
        (view,) = await self.of(caller, [await self._models.get(caller, model_id)])
        return view

    async def of(
        self, caller: Caller, entries: Sequence[tuple[LlmModel, Provider]]
    ) -> builtins.list[ModelView]:
        """The views of models already read (e.g. the answer of a create or an update)."""
        async with self._db.read() as conn:
            outcomes = await self._store.latest_generation_outcomes(
                conn, caller.organization_id, [m.id for m, _ in entries]
            )
        return [_view(model, provider, outcomes.get(model.id, True)) for model, provider in entries]


def _view(model: LlmModel, provider: Provider, last_call_ok: bool) -> ModelView:
    enabled = provider.status == "active"
    keyed = provider.driver == "llmsim" or provider.credentials_set
    return ModelView(
        model=model,
        provider=provider,
        catalogue=profile_for(model.model_id, model.display_name),
        enabled=enabled,
        healthy=enabled and keyed and last_call_ok,
    )
