"""The SDK-based drivers (official openai and anthropic SDKs) against the llmsim HTTP simulator.

Each test runs for the three wire APIs: ``openai`` (Responses), ``openai_completions`` (Chat
Completions) and ``anthropic`` (Messages). No SDK is mocked; the simulator is a real HTTP server
on 127.0.0.1, reached through the egress guard with loopback allowed as the operator would.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.llm.conftest import LlmSimServer

from everloop.domain.messages import Message, TextPart, ToolCallPart, ToolResultPart
from everloop.egress import EgressGuard
from everloop.llm.base import Completed, ModelCallError, ModelRequest, TextDelta, ToolSpec
from everloop.llm.clients import SdkDrivers
from everloop.llm.llmsim_wire import cached_split
from everloop.llm.options import DriverOptions, Endpoint, SdkDriverKind

pytestmark = pytest.mark.timeout(30)

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
KINDS: tuple[SdkDriverKind, ...] = ("openai", "openai_completions", "anthropic")
TOOLS = (
    ToolSpec("get_current_time", "The time now.", {"type": "object", "properties": {}}),
    ToolSpec(
        "add",
        "Add two numbers.",
        {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}},
    ),
)


@pytest.fixture
async def drivers() -> AsyncIterator[SdkDrivers]:
    factory = SdkDrivers(EgressGuard(allowed_private_networks=LOOPBACK))
    yield factory
    await factory.aclose()


def base_url(server: LlmSimServer, kind: SdkDriverKind) -> str:
    # The OpenAI SDK appends /chat/completions or /responses; the Anthropic SDK adds /v1/...
    return server.url if kind == "anthropic" else server.url + "/v1"


def build(
    drivers: SdkDrivers,
    server: LlmSimServer,
    kind: SdkDriverKind,
    model: str = "sim-model",
    **options: Any,
) -> Any:
    endpoint = Endpoint(base_url(server, kind), "sk-test-key")
    return drivers.build(kind, model, endpoint, DriverOptions(**options))


def user(text: str, message_id: str = "m1") -> Message:
    return Message(message_id, "user", (TextPart(text),))


def request(
    *messages: Message, model: str = "sim-model", system: str | None = None
) -> ModelRequest:
    return ModelRequest(model=model, system_prompt=system, messages=messages, tools=TOOLS)


async def run(driver: Any, req: ModelRequest) -> tuple[list[str], Completed]:
    deltas: list[str] = []
    completed: Completed | None = None
    async for event in driver.stream(req):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            assert completed is None, "exactly one Completed, last"
            completed = event
    assert completed is not None
    return deltas, completed


@pytest.mark.parametrize("kind", KINDS)
async def test_text_streams_in_deltas(
    llmsim: LlmSimServer, drivers: SdkDrivers, kind: SdkDriverKind
) -> None:
    text = "tell me a story about a very patient model, please"
    deltas, completed = await run(build(drivers, llmsim, kind), request(user(text)))
    assert completed.text == f"Echo: {text}"
    assert len(deltas) > 1 and "".join(deltas) == completed.text
    assert completed.tool_calls == ()
    assert completed.finish_reason == "stop"
    assert completed.thinking == ""


@pytest.mark.parametrize("kind", KINDS)
async def test_usage_buckets_are_disjoint(
    llmsim: LlmSimServer, drivers: SdkDrivers, kind: SdkDriverKind
) -> None:
    _deltas, completed = await run(
        build(drivers, llmsim, kind), request(user("x" * 400), system="s" * 40)
    )
    usage = completed.usage
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_creation_tokens
    assert prompt >= 110  # (40 + 400) characters / 4, plus what each wire adds
    read, created = cached_split(prompt)
    assert usage.cache_read_tokens == read > 0
    # Only Anthropic's wire reports cache writes; OpenAI's counts include reads in the prompt.
    assert usage.cache_creation_tokens == (created if kind == "anthropic" else 0)
    assert usage.input_tokens == prompt - usage.cache_read_tokens - usage.cache_creation_tokens
    assert usage.output_tokens == -(-len(completed.text) // 4)


@pytest.mark.parametrize("kind", KINDS)
async def test_one_tool_call(
    llmsim: LlmSimServer, drivers: SdkDrivers, kind: SdkDriverKind
) -> None:
    deltas, completed = await run(build(drivers, llmsim, kind), request(user("what time is it")))
    assert deltas == []
    assert completed.finish_reason == "tool_calls"
    [call] = completed.tool_calls
    assert (call.name, call.arguments) == ("get_current_time", {})
    assert call.id.startswith("call_")


@pytest.mark.parametrize("kind", KINDS)
async def test_parallel_tool_calls_and_their_results(
    llmsim: LlmSimServer, drivers: SdkDrivers, kind: SdkDriverKind
) -> None:
    driver = build(drivers, llmsim, kind)
    ask = user('add({"a": 1, "b": 2}) and add({"a": 10, "b": 20}), and the time')
    _deltas, completed = await run(driver, request(ask))
    calls = completed.tool_calls
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_current_time", {}),
        ("add", {"a": 1, "b": 2}),
        ("add", {"a": 10, "b": 20}),
    ]
    assert len({c.id for c in calls}) == 3
    # The calls and their results go back in the provider's format; llmsim echoes the results.
    results = (
        ToolResultPart(calls[0].id, result="12:00"),
        ToolResultPart(calls[1].id, result={"result": 3}),
        ToolResultPart(calls[2].id, error="overflow"),
    )
    history = (
        ask,
        Message("m2", "agent", tuple[ToolCallPart, ...](calls)),
        Message("m3", "tool_result", results),
    )
    _deltas, answer = await run(driver, request(*history))
    assert answer.text.splitlines()[1:] == [
        'get_current_time: "12:00"',
        'add: {"result": 3}',
        "add: error: overflow",
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_thinking_text_when_asked_for(
    llmsim: LlmSimServer, drivers: SdkDrivers, kind: SdkDriverKind
) -> None:
    driver = build(drivers, llmsim, kind, reasoning_effort="low", thinking_budget_tokens=2048)
    _deltas, completed = await run(driver, request(user("ponder")))
    assert completed.thinking == "Thinking about: ponder"
    assert completed.text == "Echo: ponder"


@pytest.mark.parametrize("kind", KINDS)
async def test_429_is_retryable_with_retry_after_then_succeeds(
    llmsim: LlmSimServer, drivers: SdkDrivers, kind: SdkDriverKind
) -> None:
    driver = build(drivers, llmsim, kind, model="error-429-once")
    req = request(user(f"retry me ({kind})"), model="error-429-once")
    with pytest.raises(ModelCallError) as raised:
        await run(driver, req)
    error = raised.value
    assert (error.status, error.retryable, error.retry_after) == (429, True, 1.0)
    _deltas, completed = await run(driver, req)  # the same request again: a retry
    assert completed.text == f"Echo: retry me ({kind})"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (400, False)])
async def test_status_errors_are_classified(
    llmsim: LlmSimServer, drivers: SdkDrivers, kind: SdkDriverKind, status: int, retryable: bool
) -> None:
    model = f"error-{status}"
    with pytest.raises(ModelCallError) as raised:
        await run(build(drivers, llmsim, kind, model=model), request(user("hi"), model=model))
    assert (raised.value.status, raised.value.retryable) == (status, retryable)
    assert f"simulated error {status}" in raised.value.message
    assert raised.value.retry_after == (1.0 if status == 503 else None)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", ["hang", "stall"])
async def test_a_timeout_is_retryable(
    llmsim: LlmSimServer, drivers: SdkDrivers, kind: SdkDriverKind, model: str
) -> None:
    driver = build(drivers, llmsim, kind, model=model, timeout_seconds=0.3)
    with pytest.raises(ModelCallError) as raised:
        await run(driver, request(user("hello"), model=model))
    assert raised.value.retryable is True
    assert raised.value.status is None
    assert "in time" in raised.value.message


@pytest.mark.parametrize("kind", KINDS)
async def test_an_unreachable_server_is_retryable(drivers: SdkDrivers, kind: SdkDriverKind) -> None:
    driver = drivers.build(kind, "m", Endpoint("http://127.0.0.1:9", "k"), DriverOptions())
    with pytest.raises(ModelCallError) as raised:
        await run(driver, request(user("hello")))
    assert raised.value.retryable is True
    assert "could not reach" in raised.value.message


@pytest.mark.parametrize("kind", KINDS)
async def test_an_internal_base_url_is_refused_by_default_and_not_retried(
    llmsim: LlmSimServer, kind: SdkDriverKind
) -> None:
    drivers = SdkDrivers(EgressGuard())
    endpoint = Endpoint(base_url(llmsim, kind), f"sk-{kind}-refused")
    driver = drivers.build(kind, "m", endpoint, DriverOptions())
    with pytest.raises(ModelCallError) as raised:
        await run(driver, request(user("hello")))
    await drivers.aclose()
    assert raised.value.retryable is False
    assert "(private_address)" in raised.value.message
    assert f"sk-{kind}-refused" not in llmsim.app.state.api_keys


@pytest.mark.parametrize("kind", KINDS)
async def test_the_key_is_sent_and_not_in_the_driver_repr(
    llmsim: LlmSimServer, drivers: SdkDrivers, kind: SdkDriverKind
) -> None:
    endpoint = Endpoint(base_url(llmsim, kind), f"sk-{kind}-only-here")
    assert "only-here" not in repr(endpoint)
    driver = drivers.build(kind, "m", endpoint, DriverOptions())
    await run(driver, request(user("hi")))
    assert f"sk-{kind}-only-here" in llmsim.app.state.api_keys


def test_request_bodies_carry_options() -> None:
    from everloop.llm.anthropic import AnthropicDriver
    from everloop.llm.openai_chat import OpenAIChatDriver

    options = DriverOptions(max_output_tokens=77, temperature=0.5, extra_body={"seed": 1})
    req = request(user("hi"), system="be brief")
    chat = OpenAIChatDriver(lambda: None, "m", options).request_body(req)
    assert chat["stream_options"] == {"include_usage": True}
    assert chat["messages"][0] == {"role": "system", "content": "be brief"}
    assert (chat["max_completion_tokens"], chat["temperature"]) == (77, 0.5)
    assert chat["extra_body"] == {"seed": 1}
    assert json.loads(json.dumps(chat["tools"]))[1]["function"]["name"] == "add"
    messages = AnthropicDriver(lambda: None, "m", DriverOptions()).request_body(req)
    assert messages["max_tokens"] == 4096 and messages["system"] == "be brief"
