"""The opt-in debug counters: ``GET /api/v1/debug/counters`` exists only with the setting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from everloop.api.app import create_app
from everloop.bootstrap import build_services
from everloop.config import Settings
from tests.conftest import Api


async def test_without_the_setting_the_route_does_not_exist(api: Api) -> None:
    response = await api.client.get("/v1/debug/counters")
    assert response.status_code == 404
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    assert not any("debug" in path for path in paths)


async def client_with_counters(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    services = build_services(settings.model_copy(update={"debug_counters": True}))
    try:
        boot = await services.auth.bootstrap()
        assert boot.token is not None
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://everloop.test/api",
            headers={"Authorization": f"Bearer {boot.token}"},
        ) as client:
            yield client
    finally:
        await services.close()


async def test_with_the_setting_it_reports_the_stream_counters(settings: Settings) -> None:
    async for client in client_with_counters(settings):
        assert (
            await client.get("/v1/debug/counters", headers={"Authorization": ""})
        ).status_code == 401
        response = await client.get("/v1/debug/counters")
        assert response.status_code == 200, response.text
        sse = response.json()["sse"]
        assert sse["feeds"] == 0 and sse["subscribers"] == 0
        assert {"tail_reads", "catchup_reads", "events_read", "overflows"} <= set(sse)
