"""``/api/docs`` and the error bodies, as a client meets them on a real ``everloop serve``: the
published ``everruns-sdk`` shows every validation problem, a body sent without the JSON
content type is told so, and the OpenAPI document served declares the bearer scheme."""

from __future__ import annotations

import httpx
import pytest
from everruns_sdk import Everruns
from everruns_sdk.errors import ApiError

from tests.e2e.conftest import Api, Server

pytestmark = pytest.mark.slow


async def test_the_sdk_error_names_every_problem(server: Server) -> None:
    client = Everruns(api_key=server.token, base_url=server.api_url)
    try:
        with pytest.raises(ApiError) as raised:
            await client.budgets.create("s" * 100, "org", "c" * 100, 10.0)
        error = raised.value
        assert (error.status_code, error.code) == (422, "validation_error")
        for field in ("subject_type", "currency"):
            assert f"{field}:" in error.message, error.message
        assert "more problem" not in error.message
        assert await client.budgets.list() == []
    finally:
        await client.close()


def test_the_error_body_lists_the_details(api: Api) -> None:
    bad = {"subject_type": "s" * 100, "subject_id": "org", "currency": "c" * 100, "limit": 10}
    response = api.http.post("budgets", json=bad)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "subject_type"
    assert [d["field"] for d in error["details"]] == ["subject_type", "currency"]


def test_a_body_without_the_json_content_type_is_told_to_send_it(api: Api) -> None:
    # What ``curl -d '{...}'`` sends: a form content type.
    response = api.http.post(
        "harnesses",
        content=b'{"name": "curl-harness"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]
    listed = api.ok(api.http.get("harnesses"))["data"]
    assert "curl-harness" not in [h["name"] for h in listed]


def test_the_docs_declare_the_bearer_scheme(server: Server) -> None:
    with httpx.Client(base_url=server.api_url, timeout=30.0) as anonymous:
        page = anonymous.get("/docs")
        assert page.status_code == 200 and "/api/openapi.json" in page.text
        schema = anonymous.get("/openapi.json").json()
        # What the Authorize button then sends is what the API takes.
        token = {"Authorization": f"Bearer {server.token}"}
        assert anonymous.get("/v1/harnesses", headers=token).status_code == 200
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    sessions = schema["paths"]["/api/v1/sessions"]["post"]
    assert sessions["security"] == [{"bearerAuth": []}]
    assert sessions["summary"] and sessions["description"]
