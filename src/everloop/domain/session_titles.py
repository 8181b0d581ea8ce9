"""Session titles: the rules every writer of a title shares, and the event a change records.

A title is set three ways: by the API (``PATCH /v1/sessions/{id}``), by the agent
(``write_session_title`` of the ``session`` capability), or automatically from the first user
message once the first turn completes (with that capability active). Each change appends one
``session.title.updated`` event whose ``source`` says which, so a client following the event
stream need not re-read the session to show a new title.
"""

from __future__ import annotations

from typing import Any, Final, Literal

SESSION_TITLE_UPDATED: Final = "session.title.updated"

# The API's limit (``api.schemas.Title``) and the column's width.
MAX_TITLE_CHARS: Final = 500
# An automatic title is short: a list of sessions shows it on one line.
AUTO_TITLE_CHARS: Final = 60
ELLIPSIS: Final = "…"

TitleSource = Literal["auto", "tool", "api"]


def title_problem(title: str) -> str | None:
    """Why ``title`` (already stripped) cannot be a session's title, or None if it can."""
    if not title:
        return "title must not be empty"
    if len(title) > MAX_TITLE_CHARS:
        return f"title must be at most {MAX_TITLE_CHARS} characters (got {len(title)})"
    return None


def auto_title(text: str, limit: int = AUTO_TITLE_CHARS) -> str | None:
    """The title derived from a first user message: its first non-blank line, whitespace
    collapsed, cut at a word boundary to at most ``limit`` characters (ellipsis included).
    None when the message has no text."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    words = line.split()
    if not words:
        return None
    whole = " ".join(words)
    if len(whole) <= limit:
        return whole
    room = limit - len(ELLIPSIS)
    cut = whole[: room + 1]
    # A space at ``room`` or before it ends the last whole word; a single overlong word is cut.
    boundary = cut.rfind(" ")
    kept = cut[:boundary] if boundary > 0 else whole[:room]
    return kept.rstrip() + ELLIPSIS


def title_updated(
    *, session_id: str, title: str | None, previous_title: str | None, source: TitleSource
) -> dict[str, Any]:
    """The ``session.title.updated`` event's data."""
    return {
        "session_id": session_id,
        "title": title,
        "previous_title": previous_title,
        "source": source,
    }
