"""Providers seeded from OPENAI_API_KEY / ANTHROPIC_API_KEY: created once, key sealed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from everloop import ids
from everloop.bootstrap import Services
from everloop.config import Settings
from everloop.llm.anthropic import AnthropicDriver
from everloop.llm.openai_responses import OpenAIResponsesDriver
from everloop.services.auth import Caller
from everloop.services.model_seeds import ANTHROPIC, OPENAI

OPENAI_KEY = "sk-openai-seeded-0123456789"
ANTHROPIC_KEY = "sk-ant-seeded-0123456789"


@pytest.fixture
def settings(settings: Settings) -> Iterator[Settings]:
    yield settings.model_copy(
        update={
            "openai_api_key": SecretStr(OPENAI_KEY),
            "anthropic_api_key": SecretStr(ANTHROPIC_KEY),
        }
    )


def test_the_keys_come_from_the_unprefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    loaded = Settings()
    assert loaded.openai_api_key is not None
    assert loaded.openai_api_key.get_secret_value() == "sk-from-env"
    assert loaded.anthropic_api_key is None
    assert "sk-from-env" not in repr(loaded)


async def test_seeding_creates_providers_and_models_once(services: Services) -> None:
    boot = await services.auth.bootstrap()
    org_id = boot.organization_id
    caller = Caller(org_id, ids.new_id("principal"), "0" * 32)
    await services.seed_org(org_id)
    await services.seed_org(org_id)  # idempotent
    providers = {p.name: p for p in await services.providers.list(caller)}
    assert set(providers) == {"llmsim", "openai", "anthropic"}
    assert providers["openai"].driver == "openai" and providers["openai"].credentials_set
    models = await services.models.list(caller)
    by_provider = {
        name: sorted(m.model_id for m, p in models if p.name == name) for name in providers
    }
    assert by_provider["openai"] == sorted(m.model_id for m in OPENAI.models)
    assert by_provider["anthropic"] == sorted(m.model_id for m in ANTHROPIC.models)
    # Seeded models are not the default: turns without a model stay on llmsim.
    assert (await services.models.resolve(org_id, [None])).model_name == "llmsim"
    sonnet = next(m for m, p in models if m.model_id == "claude-sonnet-4-5")
    assert sonnet.profile["prices"]["cache_write"] == 3.75
    resolved = await services.models.resolve(org_id, [sonnet.id])
    assert isinstance(resolved.driver, AnthropicDriver)
    gpt = next(m for m, p in models if p.name == "openai")
    assert isinstance(
        (await services.models.resolve(org_id, [gpt.id])).driver, OpenAIResponsesDriver
    )
    async with services.db.read() as conn:
        key = await services.providers.api_key(conn, org_id, providers["anthropic"].id)
    assert key == ANTHROPIC_KEY


async def test_a_changed_key_replaces_the_sealed_one(services: Services) -> None:
    boot = await services.auth.bootstrap()
    org_id = boot.organization_id
    await services.seed_org(org_id)
    await services.providers.seed_provider(org_id, OPENAI, "sk-rotated")
    caller = Caller(org_id, ids.new_id("principal"), "0" * 32)
    [openai] = [p for p in await services.providers.list(caller) if p.name == "openai"]
    async with services.db.read() as conn:
        assert await services.providers.api_key(conn, org_id, openai.id) == "sk-rotated"
    models = [m for m, p in await services.models.list(caller) if p.id == openai.id]
    assert len(models) == len(OPENAI.models)
