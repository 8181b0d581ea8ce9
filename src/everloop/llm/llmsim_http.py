"""llmsim over HTTP: OpenAI- and Anthropic-compatible endpoints backed by the in-process LlmSim.

``everloop llmsim --port N`` serves, streamed (SSE) or whole:

- ``POST /v1/chat/completions`` (OpenAI Chat Completions, ``stream_options.include_usage``),
- ``POST /v1/responses`` (OpenAI Responses),
- ``POST /v1/messages`` (Anthropic Messages).

Answers come from the default llmsim script (echo, and ``get_current_time`` when the text says
"time") plus one rule per offered tool: writing ``name({...})`` in the user's text calls that
tool with those JSON arguments (several such calls make parallel tool calls); text between the
braces that is not valid JSON (``add({"a": 1,})``) is sent as written, as a model's malformed
arguments are. Asking for
reasoning (``reasoning_effort``, ``reasoning``, ``thinking``) adds a thinking text.

The request's model name selects failures and delays:

- ``error-<status>`` answers every request with that status (429 and 503 carry
  ``retry-after: 1``); ``error-<status>-once`` fails only the first request with a given body
  and answers normally to the same request repeated (a retry).
- ``slow-<ms>`` waits that long before answering.
- ``hang`` never answers (until the client gives up); ``stall`` starts a stream, then stalls.

Anything else is an ordinary model. Any API key is accepted (and remembered in
``app.state.api_keys``, for tests). The app is built by ``create_app``;
nothing runs at import time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from everloop.domain.messages import JsonObject, JsonValue
from everloop.llm.base import Completed, ModelCallError, ModelRequest, TextDelta
from everloop.llm.llmsim import DEFAULT_SCRIPT, LlmSim
from everloop.llm.llmsim_wire import (
    SimAnswer,
    WireFormat,
    WireRequestError,
    error_body,
    parse_request,
    stream_answer,
    wants_thinking,
    whole_answer,
)

_ERROR = re.compile(r"^error-(\d{3})(-once)?$")
_SLOW = re.compile(r"^slow-(\d+)$")
_HANG_SECONDS = 300.0
_REMEMBERED_BODIES = 10_000


def create_app() -> FastAPI:
    """The simulator as an ASGI app (one per server; it remembers ``-once`` failures)."""
    app = FastAPI(title="llmsim", docs_url=None, redoc_url=None, openapi_url=None)
    failed_once: OrderedDict[str, None] = OrderedDict()
    # The keys clients sent (tests check that a stored key reaches the provider).
    app.state.api_keys = api_keys = set[str]()

    async def answer(wire: WireFormat, request: Request) -> Response:
        raw = await request.body()
        api_key = request.headers.get("x-api-key") or request.headers.get("authorization", "")
        if api_key and len(api_keys) < 1000:
            api_keys.add(api_key.removeprefix("Bearer "))
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise WireRequestError("the body must be a JSON object")
            parsed = parse_request(wire, body)
        except (json.JSONDecodeError, WireRequestError, KeyError, TypeError) as exc:
            return JSONResponse(error_body(wire, 400, f"invalid request: {exc}"), status_code=400)
        model = parsed.model
        if model == "hang":
            await _wait_for_disconnect(request, _HANG_SECONDS)
            return JSONResponse(error_body(wire, 504, "llmsim hang elapsed"), status_code=504)
        failure = _ERROR.match(model)
        if failure is not None:
            status = int(failure.group(1))
            digest = hashlib.sha256(raw).hexdigest()
            if failure.group(2) is None or digest not in failed_once:
                if failure.group(2) is not None:
                    failed_once[digest] = None
                    while len(failed_once) > _REMEMBERED_BODIES:
                        failed_once.popitem(last=False)
                return _error(wire, status, f"simulated error {status}")
        slow = _SLOW.match(model)
        if slow is not None:
            await asyncio.sleep(int(slow.group(1)) / 1000)
        try:
            sim_answer = await simulate(parsed, thinking=wants_thinking(wire, body))
        except ModelCallError as exc:
            return _error(wire, exc.status or 500, exc.message)
        if not body.get("stream"):
            return JSONResponse(whole_answer(wire, model, sim_answer))
        options = body.get("stream_options")
        include_usage = wire != "chat" or (
            isinstance(options, dict) and bool(options.get("include_usage"))
        )
        events = stream_answer(wire, model, sim_answer, include_usage=include_usage)
        return StreamingResponse(
            _sse(events, stall=model == "stall"),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await answer("chat", request)

    @app.post("/v1/responses")
    async def responses(request: Request) -> Response:
        return await answer("responses", request)

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        return await answer("anthropic", request)

    @app.get("/v1/models")
    async def list_models() -> JsonObject:
        return {"object": "list", "data": [{"id": "llmsim", "object": "model"}]}

    return app


async def simulate(request: ModelRequest, *, thinking: bool = False) -> SimAnswer:
    """What LlmSim answers to ``request`` (its default script plus the ``name({...})`` rules)."""
    sim = LlmSim(_script_for(request))
    chunks: list[str] = []
    completed: Completed | None = None
    async for event in sim.stream(request):
        if isinstance(event, TextDelta):
            chunks.append(event.text)
        else:
            completed = event
    assert completed is not None
    last_user = next((m.text for m in reversed(request.messages) if m.role == "user"), "")
    return SimAnswer(
        text=completed.text,
        tool_calls=completed.tool_calls,
        usage=completed.usage,
        finish_reason=completed.finish_reason,
        thinking=f"Thinking about: {last_user}" if thinking else "",
        chunks=tuple(chunks),
    )


def _script_for(request: ModelRequest) -> JsonObject:
    rules: list[JsonValue] = list(DEFAULT_SCRIPT["tool_calls"] or [])  # type: ignore[arg-type]
    last = request.messages[-1] if request.messages else None
    if last is not None and last.role == "user":
        for tool in request.tools:
            for match in re.finditer(re.escape(tool.name) + r"\((\{.*?\})\)", last.text):
                literal = re.escape(match.group(0))
                # Text that is not JSON is sent as written: a model's malformed arguments.
                rules.append({"when": literal, "name": tool.name, "raw_arguments": match.group(1)})
    return {"response": DEFAULT_SCRIPT["response"], "tool_calls": rules}


def _error(wire: WireFormat, status: int, message: str) -> JSONResponse:
    headers = {"retry-after": "1"} if status in (429, 503) else None
    return JSONResponse(error_body(wire, status, message), status_code=status, headers=headers)


async def _sse(events: Any, *, stall: bool) -> AsyncIterator[bytes]:
    for index, (name, data) in enumerate(events):
        if stall and index == 1:
            await asyncio.sleep(_HANG_SECONDS)
        payload = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {name}\n" if name else ""
        yield f"{head}data: {payload}\n\n".encode()


async def _wait_for_disconnect(request: Request, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.05)


def serve(host: str, port: int) -> None:
    """Run the simulator until interrupted (``everloop llmsim``)."""
    import uvicorn

    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
