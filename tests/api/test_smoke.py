from __future__ import annotations

from tests.conftest import Api


async def test_create_and_get_session(api: Api) -> None:
    created = await api.client.post("/v1/sessions", json={"title": "Hello"})
    assert created.status_code == 201, created.text
    body = created.json()
    fetched = await api.client.get(f"/v1/sessions/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["title"] == "Hello"
    assert fetched.json()["status"] == "started"
