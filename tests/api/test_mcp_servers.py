"""The MCP server registry: CRUD, header values never returned, bad input."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

SERVER = {
    "name": "tools",
    "url": "https://mcp.example.com/mcp",
    "description": "Example tools",
    "headers": {"Authorization": "Bearer s3cret-value", "X-Tenant": "t-1"},
}


async def create(api: Api, **fields: Any) -> dict[str, Any]:
    response = await api.client.post("/v1/mcp-servers", json=SERVER | fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_crud_and_header_values_never_returned(api: Api) -> None:
    created = await create(api)
    assert created["id"].startswith("mcp_") and created["capability_ref"] == f"mcp:{created['id']}"
    assert created["header_names"] == ["Authorization", "X-Tenant"]
    assert created["api_key_set"] is True and created["transport_type"] == "http"
    server_id = created["id"]
    for response in (
        await api.client.get("/v1/mcp-servers"),
        await api.client.get(f"/v1/mcp-servers/{server_id}"),
    ):
        assert response.status_code == 200
        assert "s3cret-value" not in response.text
    assert (await api.client.get("/v1/mcp-servers")).json()["total"] == 1
    patched = await api.client.patch(
        f"/v1/mcp-servers/{server_id}",
        json={"status": "disabled", "headers": {}, "url": "https://other.example.com/mcp"},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["status"] == "disabled" and body["header_names"] == []
    assert body["url"] == "https://other.example.com/mcp"
    assert (await api.client.delete(f"/v1/mcp-servers/{server_id}")).status_code == 204
    assert (await api.client.get(f"/v1/mcp-servers/{server_id}")).status_code == 404


async def test_stored_headers_are_never_carried_to_another_url(api: Api) -> None:
    server_id = (await create(api))["id"]
    moved = await api.client.patch(
        f"/v1/mcp-servers/{server_id}", json={"url": "https://attacker.example.com/mcp"}
    )
    assert moved.status_code == 422, moved.text
    assert moved.json()["error"]["field"] == "headers"
    kept = (await api.client.get(f"/v1/mcp-servers/{server_id}")).json()
    assert kept["url"] == SERVER["url"] and kept["header_names"] == ["Authorization", "X-Tenant"]
    # The same URL (or new headers with the new one) is fine.
    same = await api.client.patch(
        f"/v1/mcp-servers/{server_id}", json={"url": SERVER["url"], "description": "d"}
    )
    assert same.status_code == 200, same.text


async def test_header_values_are_encrypted_at_rest(api: Api) -> None:
    await create(api)
    async with api.services.db.read() as conn:
        from sqlalchemy import select

        from everloop.store.tables import mcp_servers

        row = (await conn.execute(select(mcp_servers))).one()
    assert "s3cret-value" not in str(tuple(row))


async def test_bad_input(api: Api) -> None:
    for url in ("not a url", "ftp://example.com/x", "http://", "https://u:p@example.com/"):
        response = await api.client.post("/v1/mcp-servers", json=SERVER | {"url": url})
        assert response.status_code == 422, (url, response.text)
    for headers in ({"X-A": "a\r\nInjected: 1"}, {"X-A": "a\nb"}, {"Bad Name": "x"}):
        response = await api.client.post("/v1/mcp-servers", json=SERVER | {"headers": headers})
        assert response.status_code == 422, (headers, response.text)
    bad_name = await api.client.post("/v1/mcp-servers", json=SERVER | {"name": "Not A Slug"})
    assert bad_name.status_code == 422
    await create(api)
    duplicate = await api.client.post("/v1/mcp-servers", json=SERVER)
    assert duplicate.status_code == 409, duplicate.text
    other = await create(api, name="other")
    renamed = await api.client.patch(f"/v1/mcp-servers/{other['id']}", json={"name": "tools"})
    assert renamed.status_code == 409
    assert (await api.client.get("/v1/mcp-servers/mcp_nope")).status_code == 422


async def test_capability_refs(api: Api) -> None:
    created = await create(api)
    unknown = "mcp:mcp_" + "0" * 32
    for path, body in (
        ("/v1/sessions", {}),
        ("/v1/agents", {"name": "a1", "system_prompt": "x"}),
        ("/v1/harnesses", {"name": "h1"}),
    ):
        bad = await api.client.post(path, json=body | {"capabilities": [{"ref": unknown}]})
        assert bad.status_code == 422, (path, bad.text)
        assert "unknown capability" in bad.text
        good = await api.client.post(
            path, json=body | {"capabilities": [{"ref": created["capability_ref"]}]}
        )
        assert good.status_code == 201, (path, good.text)
