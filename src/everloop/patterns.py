"""Regular expressions from users and models, compiled by RE2 (``google-re2``).

Python's ``re`` backtracks: ``(a+)+$`` against 27 ``a`` and a ``!`` takes seconds, and each more
character doubles it, with the event loop (every other request of the process) stalled
meanwhile. RE2 matches in time linear in the text whatever the pattern, at the price of what
needs backtracking: backreferences (``\\1``) and lookarounds (``(?=``, ``(?<!``) are refused
with an ``InvalidInput`` naming the field, never a 500. Python's ``\\Z`` is RE2's ``\\z``.

Every pattern a tenant or a model chooses goes through :func:`compile_untrusted`; the fixed
patterns of our own code keep using ``re``.
"""

from __future__ import annotations

import re
from typing import Protocol

import re2

from everloop.errors import InvalidInput

MAX_PATTERN_CHARS = 1000
# RE2 compiles within a memory budget; a pattern over it (``\pL{1000}``) is refused, so a
# pattern cannot make the process allocate without limit either.
_MAX_MEMORY_BYTES = 8 * 1024 * 1024
# What anchors to the whole text even in multi-line mode: \A, \z, and a flag group that turns
# multi-line off (``(?-m)``, ``(?i-sm:``). Found in the pattern's source, conservatively.
_WHOLE_TEXT_ANCHORS = re.compile(r"\\[Az]|\(\?[a-zA-Z]*-[a-zA-Z]*m")


class Match(Protocol):
    """What callers use of a match: where it is (character offsets) and what it matched."""

    def start(self) -> int: ...

    def end(self) -> int: ...

    def group(self) -> str: ...


class Regex(Protocol):
    """What callers use of a compiled RE2 pattern. ``search(text, pos)`` looks from ``pos`` on
    but sees the text before it as context (``\\b`` at ``pos`` depends on the character before)."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str, pos: int = 0) -> Match | None: ...


def compile_untrusted(pattern: str, *, field: str, ignore_case: bool = False) -> Regex:
    """``pattern`` compiled by RE2; ``InvalidInput`` (code ``invalid_pattern``, naming
    ``field``) when it is too long, invalid, or uses syntax RE2 does not support."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidInput(
            f"the pattern is over {MAX_PATTERN_CHARS} characters",
            code="invalid_pattern",
            field=field,
        )
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.max_mem = _MAX_MEMORY_BYTES
    options.log_errors = False  # a tenant's bad pattern is a 4xx, not a line in our log
    try:
        compiled: Regex = re2.compile(pattern, options)
    except re2.error as exc:
        raise InvalidInput(
            f"invalid or unsupported regular expression: {_reason(exc)} (RE2 syntax: "
            "no backreferences or lookarounds)",
            code="invalid_pattern",
            field=field,
        ) from None
    return compiled


def compile_line_filter(pattern: str) -> Regex | None:
    """A pattern that matches the lines of a text joined by ``\\n`` whenever ``pattern``
    matches one of those lines, or ``None`` when no such pattern is known.

    Matching a whole file once, in C, is far cheaper than a call per line; a file it does not
    match has no matching line and is skipped. It may also match across lines, so it is a
    filter, never the answer. In multi-line mode ``^`` and ``$`` hold at each line's ends and
    ``\\b`` sees the ``\\n`` as a non-word character, as at a line's ends; only whole-text
    anchors differ, and a pattern with one gets no filter."""
    if _WHOLE_TEXT_ANCHORS.search(pattern):
        return None
    try:
        return compile_untrusted("(?m)" + pattern, field="pattern")
    except InvalidInput:
        return None


def _reason(exc: Exception) -> str:
    """RE2's message, which the binding passes as bytes."""
    detail = exc.args[0] if exc.args else ""
    return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
