"""HTTP failures of model providers as ``ModelCallError``: what is retryable, and how long to wait.

Shared by the SDK-based drivers, each of which translates its own SDK's exceptions (in one
function per SDK) into calls of these. Retryable: 408, 409, 429, every 5xx, timeouts and
connection failures. Everything else (400, 401, 403, 404, 422, ...) is permanent: trying the
same request again cannot help.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from everloop.errors import EgressDenied
from everloop.llm.base import ModelCallError

_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_LONGEST_HINT_SECONDS = 3600.0


def is_retryable_status(status: int) -> bool:
    return status in _RETRYABLE_STATUSES or status >= 500


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The provider's wait hint: ``retry-after-ms`` (OpenAI, Anthropic), else ``retry-after`` in
    seconds or as an HTTP date. Nonsense and negative values are ignored."""
    lowered = {key.lower(): value for key, value in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return _bounded(float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        return _bounded(float(raw))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return _bounded(email.utils.mktime_tz(parsed) - time.time())


def status_error(
    provider: str, status: int, detail: str, headers: Mapping[str, str]
) -> ModelCallError:
    """The error for an HTTP error answer of ``provider`` (``detail``: its message)."""
    retryable = is_retryable_status(status)
    return ModelCallError(
        f"{provider} answered {status}: {detail}",
        status=status,
        retryable=retryable,
        retry_after=retry_after_seconds(headers) if retryable else None,
    )


def timeout_error(provider: str) -> ModelCallError:
    return ModelCallError(f"{provider} did not answer in time", retryable=True)


def connection_error(provider: str, detail: str) -> ModelCallError:
    return ModelCallError(f"could not reach {provider}: {detail}", retryable=True)


def egress_error(provider: str, exc: EgressDenied) -> ModelCallError:
    """The egress guard refused the provider's URL: permanent, as trying again changes neither
    the operator's policy nor the URL."""
    return ModelCallError(f"could not reach {provider}: {exc.summary}", retryable=False)


def unreachable_error(provider: str, cause: BaseException) -> ModelCallError:
    """A request that got no answer, from the SDK's connection error and its ``cause``: the
    guard's refusal (the anthropic SDK wraps it, the openai SDK lets it through) is permanent,
    any other failure to connect retryable."""
    if isinstance(cause, EgressDenied):
        return egress_error(provider, cause)
    return connection_error(provider, type(cause).__name__)


def _bounded(seconds: float) -> float | None:
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, _LONGEST_HINT_SECONDS)
