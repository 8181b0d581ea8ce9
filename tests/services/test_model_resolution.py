"""ModelService.resolve: which model a turn calls, and which llmsim script it runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from everloop import ids
from everloop.bootstrap import Services
from everloop.domain.messages import Message, TextPart
from everloop.errors import InvalidInput, NotFound
from everloop.llm.anthropic import AnthropicDriver
from everloop.llm.base import ModelRequest, complete
from everloop.llm.openai_chat import OpenAIChatDriver
from everloop.llm.openai_responses import OpenAIResponsesDriver
from everloop.services.auth import Caller


@dataclass
class Org:
    caller: Caller
    model_a: str
    model_b: str
    built_in: str
    missing: str


@pytest.fixture
async def org(services: Services) -> AsyncIterator[Org]:
    boot = await services.auth.bootstrap()
    org_id = boot.organization_id
    await services.providers.seed_built_ins(org_id)
    caller = Caller(org_id, ids.new_id("principal"), "0" * 32)
    provider = await services.providers.create(
        caller,
        {
            "name": "sim",
            "driver": "llmsim",
            "settings": {"llmsim": {"response": {"type": "fixed", "text": "from provider"}}},
        },
    )
    model_a, _ = await services.models.create(
        caller,
        provider.id,
        {
            "model_id": "sim-a",
            "settings": {"llmsim": {"response": {"type": "fixed", "text": "from model"}}},
            "profile": {"prices": {"input": 3, "output": 15, "cache_read": 0.3}},
        },
    )
    model_b, _ = await services.models.create(caller, provider.id, {"model_id": "sim-b"})
    built_in = [m for m, _p in await services.models.list(caller) if m.is_built_in]
    yield Org(caller, model_a.id, model_b.id, built_in[0].id, ids.new_id("model"))


def _pick(org: Org, name: str | None) -> str | None:
    return None if name is None else str(getattr(org, name))


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        (("model_a", "model_b"), "model_a"),
        (("model_b", "model_a"), "model_b"),
        ((None, "model_b", "model_a"), "model_b"),
        ((None, None, None, None, "model_a"), "model_a"),
        ((None, None), "built_in"),
        ((), "built_in"),
        (("built_in", "model_a"), "built_in"),
    ],
)
async def test_first_set_candidate_wins(
    services: Services, org: Org, candidates: tuple[str | None, ...], expected: str
) -> None:
    resolved = await services.models.resolve(
        org.caller.organization_id, [_pick(org, c) for c in candidates]
    )
    assert resolved.model_id == _pick(org, expected)


@pytest.mark.parametrize(
    "candidates",
    [("missing",), ("missing", "model_a"), (None, "missing", "model_a")],
)
async def test_a_set_id_that_does_not_exist_is_not_found(
    services: Services, org: Org, candidates: tuple[str | None, ...]
) -> None:
    with pytest.raises(NotFound, match=org.missing):
        await services.models.resolve(
            org.caller.organization_id, [_pick(org, c) for c in candidates]
        )


async def test_a_malformed_id_is_not_found(services: Services, org: Org) -> None:
    with pytest.raises(NotFound, match="gpt-4"):
        await services.models.resolve(org.caller.organization_id, ["gpt-4"])


async def test_a_model_of_another_org_is_not_found(services: Services, org: Org) -> None:
    with pytest.raises(NotFound):
        await services.models.resolve(ids.DEFAULT_ORG_ID[:-1] + "2", [org.model_a])


async def test_a_deleted_model_is_not_found(services: Services, org: Org) -> None:
    await services.models.delete(org.caller, org.model_b)
    with pytest.raises(NotFound, match=org.model_b):
        await services.models.resolve(org.caller.organization_id, [org.model_b])


async def _say(services: Services, org: Org, model_id: str | None) -> str:
    resolved = await services.models.resolve(org.caller.organization_id, [model_id])
    request = ModelRequest(
        model=resolved.model_name,
        system_prompt=None,
        messages=(Message("message_u", "user", (TextPart("hello"),)),),
    )
    return (await complete(resolved.driver, request)).text


@pytest.mark.parametrize(
    ("model", "answer"),
    [("model_a", "from model"), ("model_b", "from provider"), (None, "Echo: hello")],
)
async def test_script_of_model_beats_provider_beats_default(
    services: Services, org: Org, model: str | None, answer: str
) -> None:
    assert await _say(services, org, _pick(org, model)) == answer


async def test_resolved_model_carries_names_and_prices(services: Services, org: Org) -> None:
    resolved = await services.models.resolve(org.caller.organization_id, [org.model_a])
    assert resolved.model_name == "sim-a"
    assert resolved.driver_kind == "llmsim"
    assert resolved.provider_name == "sim"
    assert (resolved.prices.input, resolved.prices.output) == (3.0, 15.0)
    assert (resolved.prices.cache_read, resolved.prices.cache_write) == (0.3, 0.0)
    default = await services.models.resolve(org.caller.organization_id, [])
    assert (default.model_name, default.provider_name) == ("llmsim", "llmsim")


@pytest.mark.parametrize(
    ("driver", "driver_class"),
    [
        ("openai", OpenAIResponsesDriver),
        ("openai_completions", OpenAIChatDriver),
        ("anthropic", AnthropicDriver),
    ],
)
async def test_sdk_drivers_are_built(
    services: Services, org: Org, driver: str, driver_class: type
) -> None:
    fields: dict[str, Any] = {"name": driver, "driver": driver, "api_key": "sk-x"}
    provider = await services.providers.create(org.caller, fields)
    model, _ = await services.models.create(org.caller, provider.id, {"model_id": "m"})
    resolved = await services.models.resolve(org.caller.organization_id, [model.id])
    assert isinstance(resolved.driver, driver_class)
    assert (resolved.model_name, resolved.driver_kind) == ("m", driver)


async def test_the_org_default_is_the_model_marked_default(services: Services, org: Org) -> None:
    org_id = org.caller.organization_id
    assert (await services.models.resolve(org_id, [None])).model_name == "llmsim"
    await services.models.update(org.caller, org.model_b, {"settings": {"default": True}})
    assert (await services.models.resolve(org_id, [None, None])).model_name == "sim-b"
    assert (await services.models.resolve(org_id, [org.model_a])).model_name == "sim-a"
    with pytest.raises(InvalidInput, match=r"settings\.default"):
        await services.models.update(org.caller, org.model_a, {"settings": {"default": "yes"}})


@pytest.mark.parametrize(
    ("model_settings", "field"),
    [
        ({"temperature": 5}, "settings.temperature"),
        ({"timeout_seconds": 0}, "settings.timeout_seconds"),
        ({"thinking_budget_tokens": 10}, "settings.thinking_budget_tokens"),
        ({"extra_body": []}, "settings.extra_body"),
    ],
)
async def test_bad_driver_settings_are_refused(
    services: Services, org: Org, model_settings: dict[str, Any], field: str
) -> None:
    _model, provider = await services.models.get(org.caller, org.model_a)
    with pytest.raises(InvalidInput) as raised:
        await services.models.create(
            org.caller, provider.id, {"model_id": "bad", "settings": model_settings}
        )
    assert raised.value.field == field


async def test_a_disabled_provider_is_refused(services: Services, org: Org) -> None:
    _model, provider = await services.models.get(org.caller, org.model_a)
    await services.providers.update(org.caller, provider.id, {"status": "disabled"})
    with pytest.raises(InvalidInput, match="disabled"):
        await services.models.resolve(org.caller.organization_id, [org.model_a])


async def test_seeding_twice_keeps_one_built_in(services: Services, org: Org) -> None:
    await services.providers.seed_built_ins(org.caller.organization_id)
    providers = await services.providers.list(org.caller)
    models = await services.models.list(org.caller)
    assert sum(p.is_built_in for p in providers) == 1
    assert sum(m.is_built_in for m, _p in models) == 1
