"""Who a token is (a personal access token, an agent key, a runtime token), kept in the process
for a moment: every request authenticates, and asking
the database each time would cost a query per request.

An entry lives ``seconds`` (one by default) and never past its token's expiry: a hit checks
the wall clock against it, so an expired token is refused at that instant in every process.
Revocations clear the cache (:meth:`TokenCache.forget_all`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from everloop.domain.resources import Principal

V = TypeVar("V")

TOKEN_CACHE_SECONDS = 1.0
VOUCHED_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Known:
    """A live token's user and memberships, kept until ``expires`` (monotonic seconds);
    ``token_expires_at`` is the token's own expiry (None: never)."""

    expires: float
    user_id: str
    token_expires_at: datetime | None
    memberships: tuple[Principal, ...]
    grant: object | None = None
    """What an agent key or runtime token grants (``services/channel_auth.py``); None for a
    personal access token."""


class TokenCache:
    """Live tokens' users and memberships for ``seconds``, by token hash, in this process.

    ``generation`` guards against a read that raced a revocation: a lookup notes it before
    reading the database and stores its answer only if no revocation happened meanwhile, so
    an entry can never outlive a revocation made through this process. Unknown and revoked
    tokens are never kept (a new token works at once).

    Apart from the entries, the cache remembers which token hashes authenticated in the last
    hour (:meth:`vouched`): an address over its failed-authentication limit may still use them.
    """

    def __init__(
        self,
        seconds: float = TOKEN_CACHE_SECONDS,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, Known] = {}
        self._vouched: dict[str, float] = {}
        self.generation = 0

    def get(self, token_hash: str, wall_clock: datetime) -> Known | None:
        """The entry of a token that is live at ``wall_clock``; None when there is none or
        the token has expired (its entry is dropped)."""
        known = self._entries.get(token_hash)
        if known is None:
            return None
        expired = known.token_expires_at is not None and known.token_expires_at <= wall_clock
        if expired or known.expires <= self._clock():
            self._entries.pop(token_hash, None)
            return None
        return known

    def put(
        self,
        token_hash: str,
        user_id: str,
        token_expires_at: datetime | None,
        memberships: tuple[Principal, ...],
        generation: int,
        grant: object | None = None,
    ) -> Known:
        now_ = self._clock()
        known = Known(now_ + self._seconds, user_id, token_expires_at, memberships, grant)
        self._vouch(token_hash, now_)
        if generation != self.generation or self._seconds <= 0:
            return known  # a revocation came in while this was read: use it once, keep nothing
        self._entries = _bounded(self._entries, self._max_entries, lambda k: k.expires > now_)
        self._entries[token_hash] = known
        return known

    def forget_all(self) -> None:
        self.generation += 1
        self._entries.clear()

    def vouched(self, token_hash: str) -> bool:
        """Whether this token authenticated here within the last hour."""
        seen = self._vouched.get(token_hash)
        return seen is not None and seen > self._clock() - VOUCHED_SECONDS

    def unvouch(self, token_hash: str) -> None:
        self._vouched.pop(token_hash, None)

    def _vouch(self, token_hash: str, now_: float) -> None:
        horizon = now_ - VOUCHED_SECONDS
        self._vouched = _bounded(self._vouched, self._max_entries, lambda seen: seen > horizon)
        self._vouched[token_hash] = now_


def _bounded(entries: dict[str, V], limit: int, live: Callable[[V], bool]) -> dict[str, V]:
    """``entries`` with room for one more: the dead ones dropped when full, all if need be."""
    if len(entries) < limit:
        return entries
    kept = {key: value for key, value in entries.items() if live(value)}
    return kept if len(kept) < limit else {}
