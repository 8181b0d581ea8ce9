"""LLM providers and models: validation, encrypted keys, built-ins, and model resolution.

Every org has a built-in provider ``llmsim`` (driver ``llmsim``, no key) with a built-in model
``llmsim``, seeded next to the built-in harnesses; built-ins cannot be deleted. A provider's
``api_key`` is sealed with ``crypto.SecretBox`` (associated data: org and provider id) and is
never returned. ``ModelService.resolve`` is the engine's ``ModelResolver``: it opens the key and
builds the model's driver (SDK-based drivers through the injected ``DriverBuilder``).

The org default model is the most recently updated model whose ``settings.default`` is true;
without one, turns that name no model run on the built-in llmsim model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, assert_never
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.crypto import SecretBox
from everloop.domain.model_catalogue import profile_for
from everloop.domain.providers import DRIVERS, LlmModel, Provider
from everloop.domain.timestamps import now
from everloop.engine.ports import ModelPrices, ResolvedModel
from everloop.errors import Conflict, EverloopError, InvalidInput, NotFound
from everloop.llm.base import ModelDriver
from everloop.llm.llmsim import LlmSim, LlmSimScriptError, validate_llmsim_script
from everloop.llm.options import (
    DriverOptionError,
    DriverOptions,
    Endpoint,
    SdkDriverKind,
    parse_driver_options,
)
from everloop.services.auth import Caller
from everloop.services.model_seeds import SeedProvider
from everloop.store.db import Database
from everloop.store.models_store import ModelStore
from everloop.store.seed_lock import lock_org_seeding

BUILT_IN_NAME = "llmsim"
_PRICE_KEYS = ("input", "output", "cache_read", "cache_write")
_LIMIT_KEYS = ("context_window", "max_output_tokens")


def secret_aad(org_id: str, provider_id: str) -> str:
    """Associated data of a provider's sealed key: it opens only on its own row."""
    return f"{org_id}/{provider_id}"


def llmsim_script(model: LlmModel, provider: Provider) -> Any:
    """The model's ``settings.llmsim``, else the provider's, else None (the default script)."""
    for settings in (model.settings, provider.settings):
        if settings.get("llmsim") is not None:
            return settings["llmsim"]
    return None


class DriverBuilder(Protocol):
    """Builds the SDK-based drivers (``llm.clients.SdkDrivers``)."""

    def build(
        self, kind: SdkDriverKind, model: str, endpoint: Endpoint, options: DriverOptions
    ) -> ModelDriver: ...


class ProviderService:
    def __init__(self, db: Database, store: ModelStore, secrets: SecretBox) -> None:
        self._db = db
        self._store = store
        self._secrets = secrets

    async def seed_built_ins(self, org_id: str) -> None:
        """Create the built-in llmsim provider and model of ``org_id`` if missing."""
        async with self._db.write() as conn:
            await lock_org_seeding(conn, org_id)
            provider = await self._store.built_in_provider(conn, org_id)
            ts = now()
            if provider is None:
                provider_id = ids.new_id("provider")
                await self._store.insert_provider(
                    conn,
                    _provider_row(
                        org_id, provider_id, {"name": BUILT_IN_NAME, "driver": "llmsim"}, ts
                    )
                    | {"is_built_in": True},
                )
            else:
                provider_id = provider.id
            if await self._store.built_in_model(conn, org_id) is None:
                await self._store.insert_model(
                    conn,
                    _model_row(
                        org_id,
                        provider_id,
                        ids.new_id("model"),
                        {"model_id": BUILT_IN_NAME, "display_name": "llmsim (simulated model)"},
                        ts,
                    )
                    | {"is_built_in": True},
                )

    async def seed_provider(self, org_id: str, seed: SeedProvider, api_key: str) -> None:
        """Create (or refresh the key of) provider ``seed.name`` with its seed models; see
        ``model_seeds``. A provider of that name with another driver is left alone."""
        async with self._db.write() as conn:
            await lock_org_seeding(conn, org_id)
            existing = [
                p
                for p in await self._store.list_providers(conn, org_id)
                if p.name == seed.name and not p.is_built_in
            ]
            ts = now()
            if not existing:
                provider_id = ids.new_id("provider")
                sealed = self._secrets.seal(api_key, secret_aad(org_id, provider_id))
                fields = {"name": seed.name, "driver": seed.driver}
                await self._store.insert_provider(
                    conn,
                    _provider_row(org_id, provider_id, fields, ts)
                    | {"credentials_encrypted": sealed},
                )
            elif existing[0].driver != seed.driver:
                return
            else:
                provider_id = existing[0].id
                if await self._readable_key(conn, org_id, provider_id) != api_key:
                    sealed = self._secrets.seal(api_key, secret_aad(org_id, provider_id))
                    await self._store.update_provider(
                        conn,
                        org_id,
                        provider_id,
                        {"credentials_encrypted": sealed, "updated_at": ts},
                    )
            for model in seed.models:
                if not await self._store.wire_name_taken(conn, provider_id, model.model_id):
                    row = _model_row(org_id, provider_id, ids.new_id("model"), model.fields(), ts)
                    await self._store.insert_model(conn, row)

    async def api_key(self, conn: AsyncConnection, org_id: str, provider_id: str) -> str | None:
        """The provider's decrypted key, for building its driver (never logged or returned)."""
        sealed = await self._store.provider_credentials(conn, org_id, provider_id)
        return (
            None if sealed is None else self._secrets.open(sealed, secret_aad(org_id, provider_id))
        )

    async def _readable_key(
        self, conn: AsyncConnection, org_id: str, provider_id: str
    ) -> str | None:
        try:
            return await self.api_key(conn, org_id, provider_id)
        except EverloopError:  # sealed under another secret key: replace it
            return None

    async def create(self, caller: Caller, fields: dict[str, Any]) -> Provider:
        org = caller.organization_id
        _check_provider_fields(fields)
        provider_id = ids.new_id("provider")
        api_key = fields.pop("api_key", None)
        row = _provider_row(org, provider_id, fields, now())
        if api_key:
            row["credentials_encrypted"] = self._secrets.seal(api_key, secret_aad(org, provider_id))
        async with self._db.write() as conn:
            await self._store.insert_provider(conn, row)
            return await self.get(caller, provider_id, conn)

    async def get(
        self, caller: Caller, provider_id: str, conn: AsyncConnection | None = None
    ) -> Provider:
        ids.parse("provider", provider_id, field="provider_id")
        if conn is None:
            async with self._db.read() as own:
                return await self.get(caller, provider_id, own)
        found = await self._store.get_provider(conn, caller.organization_id, provider_id)
        if found is None:
            raise NotFound.of("provider", provider_id)
        return found

    async def list(self, caller: Caller) -> list[Provider]:
        async with self._db.read() as conn:
            return await self._store.list_providers(conn, caller.organization_id)

    async def update(self, caller: Caller, provider_id: str, fields: dict[str, Any]) -> Provider:
        org = caller.organization_id
        fields = _without_nulls(fields, ("name", "driver", "settings", "status"))
        _check_provider_fields(fields)
        async with self._db.write() as conn:
            current = await self.get(caller, provider_id, conn)
            if current.is_built_in and fields.get("driver", current.driver) != current.driver:
                raise Conflict(
                    f"provider '{current.name}' is built in; its driver cannot change",
                    field="driver",
                )
            values = {k: v for k, v in fields.items() if k != "api_key"}
            if "api_key" in fields:
                api_key = fields["api_key"]
                values["credentials_encrypted"] = (
                    self._secrets.seal(api_key, secret_aad(org, current.id)) if api_key else None
                )
            values["updated_at"] = now()
            await self._store.update_provider(conn, org, current.id, values)
            return await self.get(caller, current.id, conn)

    async def delete(self, caller: Caller, provider_id: str) -> None:
        async with self._db.write() as conn:
            current = await self.get(caller, provider_id, conn)
            if current.is_built_in:
                raise Conflict(f"provider '{current.name}' is built in and cannot be deleted")
            in_use = await self._store.count_models(conn, current.id)
            if in_use:
                raise Conflict(
                    f"provider '{current.name}' still has {in_use} model(s); delete them first",
                    code="provider_in_use",
                )
            await self._store.delete_provider(conn, caller.organization_id, current.id)


class ModelService:
    """Models of providers; also the engine's ``ModelResolver``."""

    def __init__(
        self,
        db: Database,
        store: ModelStore,
        providers: ProviderService,
        drivers: DriverBuilder,
    ) -> None:
        self._db = db
        self._store = store
        self._providers = providers
        self._drivers = drivers

    async def create(
        self, caller: Caller, provider_id: str, fields: dict[str, Any]
    ) -> tuple[LlmModel, Provider]:
        org = caller.organization_id
        _check_model_fields(fields)
        async with self._db.write() as conn:
            provider = await self._providers.get(caller, provider_id, conn)
            await self._check_wire_name_free(conn, provider.id, fields["model_id"])
            model_id = ids.new_id("model")
            row = _model_row(org, provider.id, model_id, fields, now())
            await _unique(self._store.insert_model(conn, row), fields["model_id"])
            return await self.get(caller, model_id, conn)

    async def get(
        self, caller: Caller, model_id: str, conn: AsyncConnection | None = None
    ) -> tuple[LlmModel, Provider]:
        ids.parse("model", model_id, field="model_id")
        if conn is None:
            async with self._db.read() as own:
                return await self.get(caller, model_id, own)
        found = await self._store.get_model(conn, caller.organization_id, model_id)
        if found is None:
            raise NotFound.of("model", model_id)
        return found, await self._providers.get(caller, found.provider_id, conn)

    async def list(
        self, caller: Caller, *, provider_id: str | None = None
    ) -> list[tuple[LlmModel, Provider]]:
        org = caller.organization_id
        async with self._db.read() as conn:
            if provider_id is not None:
                await self._providers.get(caller, provider_id, conn)
            by_id = {p.id: p for p in await self._store.list_providers(conn, org)}
            found = await self._store.list_models(conn, org, provider_id=provider_id)
        return [(m, by_id[m.provider_id]) for m in found]

    async def update(
        self, caller: Caller, model_id: str, fields: dict[str, Any]
    ) -> tuple[LlmModel, Provider]:
        org = caller.organization_id
        fields = _without_nulls(fields, ("model_id", "display_name", "settings"))
        _check_model_fields(fields)
        async with self._db.write() as conn:
            current, provider = await self.get(caller, model_id, conn)
            if "model_id" in fields:
                await self._check_wire_name_free(
                    conn, provider.id, fields["model_id"], except_id=current.id
                )
            values = dict(fields)
            if "profile" in values:
                values["profile"] = _profile(values["profile"])
            values["updated_at"] = now()
            await _unique(
                self._store.update_model(conn, org, current.id, values),
                fields.get("model_id", current.model_id),
            )
            return await self.get(caller, current.id, conn)

    async def delete(self, caller: Caller, model_id: str) -> None:
        async with self._db.write() as conn:
            current, _provider = await self.get(caller, model_id, conn)
            if current.is_built_in:
                raise Conflict(f"model '{current.model_id}' is built in and cannot be deleted")
            await self._store.delete_model(conn, caller.organization_id, current.id)

    async def ensure_exists(
        self, conn: AsyncConnection, org_id: str, model_id: str | None, field: str
    ) -> None:
        """A model id set on a session, agent or harness must name a model of the org (422)."""
        if model_id is None:
            return
        ids.parse("model", model_id, field=field)
        if await self._store.get_model(conn, org_id, model_id) is None:
            raise InvalidInput(
                f"model '{model_id}' does not exist in this organization",
                code="unknown_model",
                field=field,
            )

    async def resolve(self, org_id: str, candidates: Sequence[str | None]) -> ResolvedModel:
        """The first candidate model id that is set, else the org default model (see the
        module docstring), else the built-in llmsim model.

        Raises ``NotFound`` naming the id when a set id does not exist (any more), and
        ``InvalidInput`` when its provider is disabled or its settings are not valid.
        """
        chosen = next((c for c in candidates if c is not None), None)
        async with self._db.read() as conn:
            if chosen is not None:
                model = (
                    await self._store.get_model(conn, org_id, chosen)
                    if ids.is_valid("model", chosen)
                    else None
                )
                if model is None:
                    raise NotFound.of("model", chosen)
            else:
                model = await self._default_model(conn, org_id)
                if model is None:  # an org created without seeding: plain llmsim
                    return ResolvedModel(driver=LlmSim(), model_name=BUILT_IN_NAME)
            provider = await self._store.get_provider(conn, org_id, model.provider_id)
            assert provider is not None  # models.provider_id is a foreign key
            if provider.status != "active":
                raise InvalidInput(
                    f"provider '{provider.name}' of model '{model.model_id}' is disabled"
                )
            api_key = (
                await self._providers.api_key(conn, org_id, provider.id)
                if provider.credentials_set and provider.driver != "llmsim"
                else None
            )
        return _resolved(model, provider, self._driver(model, provider, api_key))

    async def _default_model(self, conn: AsyncConnection, org_id: str) -> LlmModel | None:
        marked = [
            m for m in await self._store.list_models(conn, org_id) if m.settings.get("default")
        ]
        if marked:
            return max(marked, key=lambda m: (m.updated_at, m.id))
        return await self._store.built_in_model(conn, org_id)

    def _driver(self, model: LlmModel, provider: Provider, api_key: str | None) -> ModelDriver:
        match provider.driver:
            case "llmsim":
                try:
                    return LlmSim(llmsim_script(model, provider))
                except LlmSimScriptError as exc:  # validated on write; guards hand-edited rows
                    raise InvalidInput(f"llmsim script of model '{model.model_id}': {exc}") from exc
            case "openai" | "openai_completions" | "anthropic":
                try:
                    options = parse_driver_options(
                        provider.settings,
                        model.settings,
                        max_output_tokens=model.profile.get("max_output_tokens"),
                    )
                except DriverOptionError as exc:
                    raise InvalidInput(f"settings of model '{model.model_id}': {exc}") from exc
                endpoint = Endpoint(provider.base_url, api_key)
                return self._drivers.build(provider.driver, model.model_id, endpoint, options)
            case _ as unreachable:
                assert_never(unreachable)

    async def _check_wire_name_free(
        self,
        conn: AsyncConnection,
        provider_id: str,
        wire_model_id: str,
        except_id: str | None = None,
    ) -> None:
        if await self._store.wire_name_taken(conn, provider_id, wire_model_id, except_id=except_id):
            raise Conflict(f"this provider already has a model '{wire_model_id}'", field="model_id")


def _resolved(model: LlmModel, provider: Provider, driver: ModelDriver) -> ResolvedModel:
    prices = model.profile.get("prices") or {}
    return ResolvedModel(
        driver=driver,
        model_name=model.model_id,
        model_id=model.id,
        provider_id=provider.id,
        provider_name=provider.name,
        driver_kind=provider.driver,
        prices=ModelPrices(**{k: float(prices.get(k) or 0.0) for k in _PRICE_KEYS}),
        # The org's own limit if it set one, else what the vendor published (the catalogue).
        context_window=_positive(model.profile.get("context_window"))
        or profile_for(model.model_id, model.model_id).context_window,
    )


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# -- validation and rows ----------------------------------------------------------------------


def _check_provider_fields(fields: dict[str, Any]) -> None:
    if "name" in fields:
        name = fields["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidInput("a provider name must be 1 to 200 characters", field="name")
    if "driver" in fields and fields["driver"] not in DRIVERS:
        raise InvalidInput(
            f"unknown driver '{fields['driver']}' (expected one of {', '.join(DRIVERS)})",
            field="driver",
        )
    if fields.get("base_url") is not None:
        _check_base_url(fields["base_url"])
    if "settings" in fields:
        _check_settings(fields["settings"])
    if fields.get("status", "active") not in ("active", "disabled"):
        raise InvalidInput("status must be 'active' or 'disabled'", field="status")


def _check_base_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "base_url must be an http:// or https:// URL with a host", field="base_url"
        )


def _check_settings(settings: Any) -> None:
    if not isinstance(settings, dict):
        raise InvalidInput("settings must be an object", field="settings")
    if not isinstance(settings.get("default", False), bool):
        raise InvalidInput("settings.default must be a boolean", field="settings.default")
    try:
        parse_driver_options(settings)
    except DriverOptionError as exc:
        path = f"settings.{exc.path}"
        raise InvalidInput(f"{path}: {exc.problem}", field=path) from exc
    script = settings.get("llmsim")
    if script is None:
        return
    try:
        validate_llmsim_script(script)
    except LlmSimScriptError as exc:
        path = "settings.llmsim" if exc.path == "script" else f"settings.llmsim.{exc.path}"
        raise InvalidInput(f"{path}: {exc.problem}", field=path) from exc


def _check_model_fields(fields: dict[str, Any]) -> None:
    wire = fields.get("model_id")
    if "model_id" in fields and (not isinstance(wire, str) or not wire.strip() or len(wire) > 200):
        raise InvalidInput("model_id must be 1 to 200 characters", field="model_id")
    display = fields.get("display_name")
    if display is not None and (not display.strip() or len(display) > 200):
        raise InvalidInput("display_name must be 1 to 200 characters", field="display_name")
    if "settings" in fields:
        _check_settings(fields["settings"])
    if fields.get("profile") is not None:
        _profile(fields["profile"])


def _profile(raw: Any) -> dict[str, Any]:
    """A complete profile: token limits (null when unknown) and prices per million tokens."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise InvalidInput("profile must be an object", field="profile")
    profile: dict[str, Any] = {}
    for key in _LIMIT_KEYS:
        value = raw.get(key)
        if value is not None and (not _is_int(value) or value < 1):
            raise InvalidInput(f"profile.{key} must be a positive integer", field=f"profile.{key}")
        profile[key] = value
    prices = raw.get("prices") or {}
    if not isinstance(prices, dict):
        raise InvalidInput("profile.prices must be an object", field="profile.prices")
    profile["prices"] = {}
    for key in _PRICE_KEYS:
        value = prices.get(key, 0.0)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise InvalidInput(
                f"profile.prices.{key} must be a non-negative number",
                field=f"profile.prices.{key}",
            )
        profile["prices"][key] = float(value)
    return profile


def _without_nulls(fields: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A PATCH that sends null for a required field leaves it unchanged."""
    return {k: v for k, v in fields.items() if not (k in keys and v is None)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _provider_row(org_id: str, provider_id: str, fields: dict[str, Any], ts: str) -> dict[str, Any]:
    return {
        "id": provider_id,
        "organization_id": org_id,
        "base_url": None,
        "credentials_encrypted": None,
        "settings": {},
        "is_built_in": False,
        "status": "active",
        "created_at": ts,
        "updated_at": ts,
        **fields,
    }


def _model_row(
    org_id: str, provider_id: str, model_id: str, fields: dict[str, Any], ts: str
) -> dict[str, Any]:
    return {
        "id": model_id,
        "organization_id": org_id,
        "provider_id": provider_id,
        "display_name": fields.get("display_name") or fields["model_id"],
        "settings": {},
        "is_built_in": False,
        "created_at": ts,
        "updated_at": ts,
        **{k: v for k, v in fields.items() if k != "display_name"},
        "profile": _profile(fields.get("profile")),
    }


async def _unique(operation: Any, wire_model_id: str) -> None:
    """Run an insert/update; a duplicate wire name that slipped past the check is a 409."""
    try:
        await operation
    except IntegrityError as exc:
        raise Conflict(
            f"this provider already has a model '{wire_model_id}'", field="model_id"
        ) from exc
