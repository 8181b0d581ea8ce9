"""The change reason of the request being served, for the services that keep history.

The API sets it per request (``api/change_reason.py``); services read it where they write a
history entry: an agent version without its own summary records the reason as its summary.
"""

from __future__ import annotations

from contextvars import ContextVar

current_change_reason: ContextVar[str | None] = ContextVar("current_change_reason", default=None)
