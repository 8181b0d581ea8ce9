"""The llmsim HTTP simulator itself: whole (non-streamed) answers read by the official SDKs, bad
requests, slow models, and the ``everloop llmsim`` command."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time

import anthropic
import httpx
import openai
import pytest
from tests.llm.conftest import LlmSimServer

pytestmark = pytest.mark.timeout(30)

TIME_TOOL = {"name": "get_current_time", "description": "now", "parameters": {"type": "object"}}


async def test_chat_completions_whole_answer(llmsim: LlmSimServer) -> None:
    async with openai.AsyncOpenAI(base_url=llmsim.url + "/v1", api_key="k", max_retries=0) as c:
        answer = await c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hello"}]
        )
        assert answer.choices[0].message.content == "Echo: hello"
        assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
        assert answer.usage.prompt_tokens_details.cached_tokens == answer.usage.prompt_tokens // 2
        called = await c.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "the time?"}],
            tools=[{"type": "function", "function": TIME_TOOL}],
        )
        assert called.choices[0].finish_reason == "tool_calls"
        calls = called.choices[0].message.tool_calls or []
        assert [call.function.name for call in calls] == ["get_current_time"]


async def test_each_request_is_counted_afresh(llmsim: LlmSimServer) -> None:
    # Every request parses into new messages with the same ids (msg_0, ...); a count remembered
    # for one must never be used for a later one whose content took its freed address.
    lengths = range(1, 300)
    async with httpx.AsyncClient(base_url=llmsim.url) as client:
        counted = []
        for length in lengths:
            body = {"model": "m", "messages": [{"role": "user", "content": "x" * length}]}
            answer = (await client.post("/v1/chat/completions", json=body)).json()
            counted.append(answer["usage"]["prompt_tokens"])
    assert counted == [math.ceil(length / 4) for length in lengths]


async def test_responses_whole_answer(llmsim: LlmSimServer) -> None:
    async with openai.AsyncOpenAI(base_url=llmsim.url + "/v1", api_key="k", max_retries=0) as c:
        answer = await c.responses.create(model="m", input="hello", instructions="be kind")
        assert answer.output_text == "Echo: hello"
        assert answer.usage is not None
        assert answer.usage.input_tokens_details.cached_tokens == answer.usage.input_tokens // 2


async def test_messages_whole_answer(llmsim: LlmSimServer) -> None:
    async with anthropic.AsyncAnthropic(base_url=llmsim.url, api_key="k", max_retries=0) as c:
        answer = await c.messages.create(
            model="m", max_tokens=100, messages=[{"role": "user", "content": "hello"}]
        )
        assert [block.type for block in answer.content] == ["text"]
        assert answer.content[0].text == "Echo: hello"
        assert answer.stop_reason == "end_turn"
        assert (answer.usage.cache_read_input_tokens or 0) > 0


async def test_bad_requests_are_400_in_the_wire_format(llmsim: LlmSimServer) -> None:
    async with httpx.AsyncClient(base_url=llmsim.url) as client:
        chat = await client.post("/v1/chat/completions", json={"model": "m", "messages": 3})
        assert chat.status_code == 400
        assert "messages" in chat.json()["error"]["message"]
        messages = await client.post("/v1/messages", content=b"not json")
        assert messages.status_code == 400
        assert messages.json()["type"] == "error"


async def test_slow_models_wait_before_answering(llmsim: LlmSimServer) -> None:
    async with httpx.AsyncClient(base_url=llmsim.url) as client:
        started = time.monotonic()
        answer = await client.post(
            "/v1/chat/completions",
            json={"model": "slow-200", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 200
        assert time.monotonic() - started >= 0.2


def test_the_llmsim_command_serves_until_interrupted() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = "from everloop.cli.main import app; app()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "llmsim", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "ping"}]},
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "llmsim did not start"
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                time.sleep(0.05)
        assert answer.json()["choices"][0]["message"]["content"] == "Echo: ping"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
