"""``Idempotency-Key`` support for the routes that start work (see services/idempotency.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, Request, Response
from pydantic import BaseModel

from everloop.api.deps import services
from everloop.services.auth import Caller
from everloop.services.idempotency import request_hash

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Replays the first response for 24 hours instead of doing the work again.",
    ),
]


async def once(
    request: Request,
    caller: Caller,
    key: str | None,
    status_code: int,
    produce: Callable[[], Awaitable[BaseModel]],
) -> Response:
    """Produce the response, or replay it when ``key`` was seen with the same request."""

    async def handle() -> tuple[int, str]:
        model = await produce()
        return status_code, model.model_dump_json(by_alias=True)

    if key is None:
        status, body = await handle()
        return Response(body, status_code=status, media_type="application/json")
    fingerprint = request_hash(request.method, request.url.path, await request.body())
    stored = await services(request).idempotency.run(caller, key, fingerprint, handle)
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
    return Response(stored.body, stored.status, headers=headers, media_type="application/json")
