"""Session secrets by reference: ``{{secret:NAME}}`` placeholders, and redaction of values.

The model never needs a secret's value: it writes the placeholder into a tool's arguments and
the tool resolves it at the point of its outbound call (``capabilities.base.ToolContext``). What
is stored (the tool call, its events, the turn state) keeps the placeholder.

A value that shows up anyway (a tool result echoing it, a model repeating it) is redacted
before it is stored: in text as ``[redacted:NAME]``, in tool-call arguments as the placeholder
again (so the call still works). Matching is literal: a value the model transformed (encoded,
split with spaces) is not recognised, and values shorter than ``MIN_REDACTED_CHARS`` are left
alone (they would match ordinary text). The real defence is that the value is never shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from everloop.domain.messages import JsonValue

PLACEHOLDER = re.compile(r"\{\{secret:([A-Za-z_][A-Za-z0-9_.-]{0,127})\}\}")
MIN_REDACTED_CHARS = 6


def placeholder(name: str) -> str:
    return "{{secret:" + name + "}}"


def redaction(name: str) -> str:
    return f"[redacted:{name}]"


def referenced_names(value: JsonValue) -> set[str]:
    """The secret names the placeholders in ``value`` (its strings, recursively) refer to."""
    return {m.group(1) for text in _strings(value) for m in PLACEHOLDER.finditer(text)}


def substitute(value: JsonValue, secrets: Mapping[str, str]) -> JsonValue:
    """``value`` with every placeholder replaced by its secret (all names must be present)."""
    return map_strings(value, lambda text: PLACEHOLDER.sub(lambda m: secrets[m.group(1)], text))


def map_strings(value: JsonValue, change: Callable[[str], str]) -> JsonValue:
    """``value`` with ``change`` applied to every string in it (object keys included)."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [map_strings(item, change) for item in value]
    if isinstance(value, dict):
        return {change(k): map_strings(v, change) for k, v in value.items()}
    return value


def _strings(value: JsonValue) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)


class Redactor:
    """A session's secrets (``secrets``, by name), and the replacing of their values in what
    is recorded, longest first."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.secrets = dict(secrets)
        pairs = [(v, n) for n, v in secrets.items() if len(v) >= MIN_REDACTED_CHARS]
        self._by_value = dict(sorted(pairs, key=lambda p: -len(p[0])))
        self._pattern = (
            re.compile("|".join(re.escape(v) for v in self._by_value)) if self._by_value else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    @property
    def longest(self) -> int:
        return max((len(v) for v in self._by_value), default=0)

    def text(self, text: str) -> str:
        """``text`` with each value replaced by ``[redacted:NAME]``."""
        return self._replace(text, redaction)

    def references(self, text: str) -> str:
        """``text`` with each value replaced by its placeholder (for tool-call arguments)."""
        return self._replace(text, placeholder)

    def json(self, value: JsonValue) -> JsonValue:
        return map_strings(value, self.text) if self else value

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where values occur in ``text`` (start, end), left to right, not overlapping."""
        if self._pattern is None:
            return []
        return [m.span() for m in self._pattern.finditer(text)]

    def _replace(self, text: str, marker: Callable[[str], str]) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: marker(self._by_value[m.group(0)]), text)


class StreamRedactor:
    """Redacts text that arrives in pieces (streamed deltas): a value split across two deltas
    is still caught, because the tail that could be the start of a value is held back until
    the text after it shows it is not (or the stream ends)."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._raw = ""
        self._released = 0  # raw characters already given out
        self.emitted = ""  # everything given out so far, redacted

    def feed(self, piece: str) -> str:
        """Add ``piece``; returns the redacted text that is now safe to show (maybe empty)."""
        self._raw += piece
        return self._release(self._safe_end())

    def finish(self) -> str:
        """The rest of the text, redacted (the stream ended: nothing is pending any more)."""
        return self._release(len(self._raw))

    def _safe_end(self) -> int:
        """The end of the prefix that no value (complete, or still arriving) overlaps."""
        if not self._redactor:
            return len(self._raw)
        end = max(self._released, len(self._raw) - (self._redactor.longest - 1))
        for start, stop in self._redactor.spans(self._raw[self._released :]):
            start, stop = start + self._released, stop + self._released
            if start < end < stop:
                return start
        return end

    def _release(self, end: int) -> str:
        out = self._redactor.text(self._raw[self._released : end])
        self._released = end
        self.emitted += out
        return out
