"""The limit on failed authentications per client address (``EVERLOOP_AUTH_FAILURE_LIMIT``).

A moving window in this process's memory (the ``limits`` library): each failed authentication
from an address takes one unit; once an address has used them all, its requests are refused
before their token is looked up, so a flood of guessed tokens costs no database query. Each
process counts on its own.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter


def parse_limit(text: str) -> RateLimitItem:
    """``"20/minute"``, ``"100 per hour"``...; ValueError when it is not a rate limit."""
    return parse(text)


class FailedAuthLimiter:
    """Counts failed authentications per client address against one rate limit."""

    def __init__(self, limit: str) -> None:
        self._item = parse_limit(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may fail again; None while it is under the limit."""
        if await self._limiter.test(self._item, address):
            return None
        stats = await self._limiter.get_window_stats(self._item, address)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def failed(self, address: str) -> None:
        await self._limiter.hit(self._item, address)
