"""The published ``everruns-sdk`` reads the capability registry of a real ``everloop serve``."""

from __future__ import annotations

import pytest
from everruns_sdk import Everruns

from tests.e2e.conftest import Server

pytestmark = pytest.mark.slow


async def test_capabilities_list_and_get(server: Server) -> None:
    client = Everruns(api_key=server.token, base_url=server.api_url)
    try:
        page = await client.capabilities.list_page(limit=100)
        assert page.total >= 5 and page.limit == 100
        listed = await client.capabilities.list(limit=100)
        by_id = {c.id: c for c in listed}
        assert {"current_time", "test_math", "test_weather", "web_fetch", "sql_database"} <= set(
            by_id
        )
        web = await client.capabilities.get("web_fetch")
        assert web.risk_level == "high" and web.status == "available"
        assert [t["name"] for t in web.tool_definitions or []] == ["web_fetch"]
        sql = by_id["sql_database"]
        assert sql.features == ["sql_database"]
        searched = await client.capabilities.list(search="weather")
        assert [c.id for c in searched] == ["test_weather"]
    finally:
        await client.close()
