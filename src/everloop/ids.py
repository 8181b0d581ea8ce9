"""Typed ids: ``{prefix}_{32 lowercase hex}``.

Stored entities get UUIDv7 (time-ordered, so ids sort by creation); message ids are UUIDv4 so
they leak no timestamp. Clients may supply ids; ``parse`` validates them.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from typing import Final, Literal

from everloop.errors import InvalidInput

Prefix = Literal[
    "org",
    "principal",
    "harness",
    "agent",
    "agentver",
    "identity",
    "session",
    "model",
    "provider",
    "event",
    "message",
    "turn",
    "exec",
    "pat",
    "mcp",
    "task",
    "tmsg",
    "sched",
    "schedexec",
    "budget",
    "ledger",
    "apichan",
    "agentkey",
    "rtok",
    "mem",
    "wsp",
    "healthcheck",
    "user",
    "audit",
]

PREFIXES: Final[frozenset[str]] = frozenset(Prefix.__args__)  # type: ignore[attr-defined]
_HEX32 = re.compile(r"^[0-9a-f]{32}$")

DEFAULT_ORG_ID: Final = "org_00000000000000000000000000000001"


class _Uuid7Clock:
    """Monotonic UUIDv7 source: within one millisecond, each id is the previous one plus one.

    Rows are ordered by (created_at, id) and timestamps have millisecond precision, so ids made
    in the same millisecond must still sort in creation order (RFC 9562, section 6.2).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next_hex(self) -> str:
        ms = time.time_ns() // 1_000_000
        rand = int.from_bytes(os.urandom(10), "big")
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76  # version
        value |= ((rand >> 68) & 0xFFF) << 64
        value |= 0b10 << 62  # variant
        value |= rand & ((1 << 62) - 1)
        with self._lock:
            if value <= self._last:
                value = _uuid7_successor(self._last)
            self._last = value
        return f"{value:032x}"


def _uuid7_successor(value: int) -> int:
    """The next UUIDv7 after ``value``: add one to its 74 random bits, skipping version/variant."""
    rand_a = (value >> 64) & 0xFFF
    rand_b = value & ((1 << 62) - 1)
    ms = value >> 80
    counter = ((rand_a << 62) | rand_b) + 1
    if counter >> 74:  # the counter overflowed: borrow the next millisecond
        ms, counter = ms + 1, 0
    return (
        (ms << 80)
        | (0x7 << 76)
        | ((counter >> 62) << 64)
        | (0b10 << 62)
        | (counter & ((1 << 62) - 1))
    )


_CLOCK = _Uuid7Clock()


def uuid7_hex() -> str:
    """A UUIDv7 in simple (32 hex) form: 48 bits of unix ms, then random bits; monotonic."""
    return _CLOCK.next_hex()


def new_id(prefix: Prefix) -> str:
    """A fresh id; UUIDv4 for messages, UUIDv7 for everything else."""
    if prefix == "message":
        return f"message_{uuid.uuid4().hex}"
    return f"{prefix}_{uuid7_hex()}"


def is_valid(prefix: Prefix, value: str) -> bool:
    head, sep, tail = value.partition("_")
    return sep == "_" and head == prefix and bool(_HEX32.match(tail))


def parse(prefix: Prefix, value: str, *, field: str | None = None) -> str:
    """Return ``value`` if it is a well-formed ``prefix`` id, else raise ``InvalidInput``."""
    if not is_valid(prefix, value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InvalidInput(
            f"'{shown}' is not a valid {prefix} id (expected {prefix}_ followed by 32 "
            "lowercase hex characters)",
            code="invalid_id",
            field=field or f"{prefix}_id",
        )
    return value
