"""Timestamps as RFC 3339 strings, UTC, millisecond precision (``2026-11-24T05:13:04.123Z``)."""

from __future__ import annotations

from datetime import UTC, datetime


def format_ts(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def now() -> str:
    return format_ts(datetime.now(UTC))


def ms_between(start: str, end: str) -> int:
    """Milliseconds from one RFC 3339 timestamp to a later one (0 if it is not later)."""
    elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(0, round(elapsed.total_seconds() * 1000))
