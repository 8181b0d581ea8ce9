"""The one translation of ``openai`` SDK exceptions into ``ModelCallError`` (both OpenAI APIs)."""

from __future__ import annotations

import httpx2
import openai

from everloop.errors import EgressDenied
from everloop.llm.base import ModelCallError
from everloop.llm.failures import (
    connection_error,
    egress_error,
    status_error,
    timeout_error,
    unreachable_error,
)


def openai_call_error(
    exc: openai.OpenAIError | httpx2.TransportError | EgressDenied, provider: str = "openai"
) -> ModelCallError:
    """429/5xx/timeouts/connection failures are retryable (with Retry-After); other errors not.

    ``httpx2`` transport errors are those raised while a stream is being read (the SDK wraps
    only the ones raised before the response starts)."""
    if isinstance(exc, EgressDenied):
        return egress_error(provider, exc)
    if isinstance(exc, httpx2.TimeoutException):
        return timeout_error(provider)
    if isinstance(exc, httpx2.TransportError):
        return connection_error(provider, type(exc).__name__)
    if isinstance(exc, openai.APITimeoutError):
        return timeout_error(provider)
    if isinstance(exc, openai.APIConnectionError):
        return unreachable_error(provider, exc.__cause__ or exc)
    if isinstance(exc, openai.APIStatusError):
        return status_error(provider, exc.status_code, _detail(exc), exc.response.headers)
    if isinstance(exc, openai.APIError):
        # An error event in the middle of a stream: the request was accepted, the server failed.
        return ModelCallError(f"{provider} failed mid-stream: {exc.message}", retryable=True)
    return ModelCallError(f"{provider}: {exc}", retryable=False)


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str):
            return message
    return exc.message
