"""What a request may carry: only values the store keeps and the API gives back unchanged.

Everything a write endpoint accepts is stored as JSON (orjson) and later returned through
pydantic. A value either of them refuses would be accepted, stored, and then break every read
of it (a whole org's session list, a session's events) until deleted; so a request is refused
up front, with a 422 naming the field, when any value in it:

- holds a string or object key with a lone UTF-16 surrogate: JSON's ``\\ud800`` escape spells
  one, but it is not Unicode text, so it can neither be encoded as UTF-8 nor stored;
- holds an integer outside signed 64 bits (what the store's encoder keeps as an integer) or a
  float that is NaN or infinite (Python's parser takes ``NaN``/``Infinity``; JSON has none);
- nests deeper than ``MAX_DEPTH`` objects/arrays (the encoders give up at about 250 levels,
  counting the levels around a value in a response).

``WireModel`` applies these checks (``storable``) to every field of every request model, and
responses, which reuse some of those models, always pass them. Free-form fields
(``JsonObject``: metadata, hints, configs, settings) are also held to the settings
``max_json_depth`` and ``max_json_bytes``, in force through ``JsonLimitsMiddleware``; response
models type such fields as plain dicts, so lowering a limit never makes stored values
unreadable.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from starlette.types import ASGIApp, Receive, Scope, Send

from everloop.config import Settings

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_DEPTH = 100  # also the upper bound of the max_json_depth setting


@dataclass(frozen=True, slots=True)
class JsonLimits:
    max_depth: int
    max_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> JsonLimits:
        return cls(settings.max_json_depth, settings.max_json_bytes)


_DEFAULTS = JsonLimits(
    Settings.model_fields["max_json_depth"].default,
    Settings.model_fields["max_json_bytes"].default,
)
_limits: ContextVar[JsonLimits] = ContextVar("everloop_json_limits", default=_DEFAULTS)


class JsonLimitsMiddleware:
    """Validate the requests of an app under its settings' JSON limits (the validators of the
    wire models have no other way to see the settings)."""

    def __init__(self, app: ASGIApp, limits: JsonLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _limits.set(self.limits)
        try:
            await self.app(scope, receive, send)
        finally:
            _limits.reset(token)


def json_problem(value: Any, max_depth: int) -> str | None:
    """Why ``value`` could not be stored and returned unchanged, or None if it can.

    Walks the plain JSON in ``value`` (dicts, lists, scalars); anything else, such as a nested
    wire model, is left to its own validation.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not is_text(item):
                return f"a string{_at(path)} has a lone UTF-16 surrogate, which is not text"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return f"an integer{_at(path)} is outside the signed 64-bit range"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"a number{_at(path)} is NaN or infinite"
        elif isinstance(item, (dict, list, tuple)):
            if len(path) >= max_depth:
                return f"nests deeper than {max_depth} levels{_at(path)}"
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str) and not is_text(key):
                        return f"a key{_at(path)} has a lone UTF-16 surrogate, which is not text"
                    stack.append((child, (*path, key)))
            else:
                stack.extend((child, (*path, index)) for index, child in enumerate(item))
    return None


def is_text(value: str) -> bool:
    """Whether ``value`` is Unicode text: encodable as UTF-8, so no lone surrogate."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(value: str, limit: int = 60) -> str:
    """``value`` fit for an error message: lone surrogates escaped, at most ``limit`` chars."""
    safe = value if is_text(value) else value.encode("utf-8", "backslashreplace").decode()
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def _at(path: tuple[str | int, ...]) -> str:
    if not path:
        return ""
    return " at " + printable(".".join(printable(str(part), 40) for part in path), 200)


def storable(value: Any) -> Any:
    """Validator of every request field: ``value`` can be stored and returned unchanged."""
    return _checked(value, MAX_DEPTH)


def _checked(value: Any, max_depth: int) -> Any:
    problem = json_problem(value, max_depth)
    if problem is not None:
        # The problem goes in as context: a key quoted in it may hold "{...}".
        raise PydanticCustomError("unstorable_value", "{problem}", {"problem": problem})
    return value


def _free_form(value: Any) -> Any:
    limits = _limits.get()
    _checked(value, limits.max_depth)
    max_bytes = limits.max_bytes
    size = len(orjson.dumps(value))
    if size > max_bytes:
        raise PydanticCustomError(
            "json_too_large",
            "is {size} bytes as JSON; the limit is {max_bytes}",
            {"size": size, "max_bytes": max_bytes},
        )
    return value


JsonValue = Annotated[Any, AfterValidator(_free_form)]
"""A free-form JSON value (an extra field of a model that allows them): storable and bounded."""
JsonObject = Annotated[dict[str, Any], AfterValidator(_free_form)]
"""A free-form JSON object (metadata, hints, a capability's config): storable and bounded."""
