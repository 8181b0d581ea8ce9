"""Idempotency-Key: the same key with the same request within 24 hours replays the first
response and does nothing new.

- same key, same request, first one finished: the stored response is replayed;
- same key, different request: ``idempotency_key_reused`` (422);
- same key while the first is still being handled: ``idempotency_key_in_progress`` (409);
- a request that fails releases its key, so the client may retry it.

Keys are scoped to the organization and the calling principal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError

from everloop.domain.timestamps import format_ts, now
from everloop.errors import Conflict, InvalidInput
from everloop.services.auth import Caller
from everloop.store import idempotency as store
from everloop.store.db import Database

KEEP = timedelta(hours=24)
MAX_KEY_CHARS = 255


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: str
    replayed: bool


def request_hash(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


class IdempotencyService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def run(
        self,
        caller: Caller,
        key: str,
        fingerprint: str,
        handle: Callable[[], Awaitable[tuple[int, str]]],
    ) -> StoredResponse:
        """Run ``handle`` once per key; ``handle`` returns (status, JSON body)."""
        if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise InvalidInput(
                f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable characters",
                field="Idempotency-Key",
            )
        org, principal = caller.organization_id, caller.principal_id
        async with self._db.write() as conn:
            found = await store.find(conn, org, principal, key)
            if found is not None and found.created_at < format_ts(datetime.now(UTC) - KEEP):
                await store.release(conn, org, principal, key)
                found = None
            if found is not None:
                if found.request_hash != fingerprint:
                    raise InvalidInput(
                        "this Idempotency-Key was used for a different request",
                        code="idempotency_key_reused",
                        field="Idempotency-Key",
                    )
                if found.state != "done":
                    raise Conflict(
                        "a request with this Idempotency-Key is still being handled; "
                        "retry in a moment",
                        code="idempotency_key_in_progress",
                    )
                assert found.response_status is not None and found.response_body is not None
                return StoredResponse(found.response_status, found.response_body, replayed=True)
            try:
                await store.claim(conn, org, principal, key, fingerprint, now())
            except IntegrityError as exc:  # a concurrent first request won the race
                raise Conflict(
                    "a request with this Idempotency-Key is still being handled",
                    code="idempotency_key_in_progress",
                ) from exc
        try:
            status, body = await handle()
        except BaseException:
            async with self._db.write() as conn:
                await store.release(conn, org, principal, key)
            raise
        async with self._db.write() as conn:
            await store.complete(conn, org, principal, key, status, body)
        return StoredResponse(status, body, replayed=False)
