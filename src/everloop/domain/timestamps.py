"""Timestamps as RFC 3339 strings, UTC, millisecond precision (``2026-11-24T05:13:04.123Z``)."""

from __future__ import annotations

from datetime import UTC, datetime


def format_ts(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def now() -> str:
    return format_ts(datetime.now(UTC))
