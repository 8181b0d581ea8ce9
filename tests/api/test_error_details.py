"""A validation error lists every problem; a body not sent as JSON is told to say so."""

from __future__ import annotations

import orjson
import pytest

from tests.api.conftest import assert_error
from tests.conftest import Api


async def _harness_names(api: Api) -> list[str]:
    response = await api.client.get("/v1/harnesses")
    assert response.status_code == 200, response.text
    return sorted(h["name"] for h in response.json()["data"])


async def test_a_validation_error_lists_every_problem(api: Api) -> None:
    before = await _harness_names(api)
    bad = {"name": 5, "tags": "x", "parallel_tool_calls": "often"}
    response = await api.client.post("/v1/harnesses", json=bad)
    error = assert_error(response, 422, "validation_error", field="name")
    details = error["details"]
    assert [d["field"] for d in details] == ["name", "tags", "parallel_tool_calls"]
    assert all(isinstance(d["message"], str) and d["message"] for d in details)
    for detail in details:  # the message, all a client may show, names each problem too
        assert f"{detail['field']}: {detail['message']}" in error["message"]
    assert "more problem" not in error["message"]
    assert await _harness_names(api) == before


async def test_one_problem_is_one_detail(api: Api) -> None:
    response = await api.client.post("/v1/harnesses", json={"name": "h", "tags": "x"})
    error = assert_error(response, 422, "validation_error", field="tags")
    assert error["details"] == [{"field": "tags", "message": error["message"][len("tags: ") :]}]


async def test_many_problems_keep_the_message_short_and_the_details_whole(api: Api) -> None:
    body = {"name": "h", "tags": list(range(30))}
    response = await api.client.post("/v1/harnesses", json=body)
    error = assert_error(response, 422, "validation_error", field="tags.0")
    assert [d["field"] for d in error["details"]] == [f"tags.{i}" for i in range(30)]
    assert "tags.9:" in error["message"] and "tags.10:" not in error["message"]
    assert error["message"].endswith("and 20 more (see details)")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_json_body_without_the_json_content_type_is_told_to_send_it(
    api: Api, content_type: str
) -> None:
    before = await _harness_names(api)
    response = await api.client.post(
        "/v1/harnesses",
        content=orjson.dumps({"name": "plain-harness"}),
        headers={"Content-Type": content_type},
    )
    error = assert_error(response, 415, "unsupported_media_type")
    assert "Content-Type: application/json" in error["message"]
    assert content_type in error["message"]
    assert await _harness_names(api) == before


async def test_an_update_without_the_json_content_type_is_told_too(api: Api) -> None:
    created = await api.client.post("/v1/harnesses", json={"name": "patched-harness"})
    assert created.status_code == 201, created.text
    response = await api.client.patch(
        f"/v1/harnesses/{created.json()['id']}",
        content=b'{"description": "changed"}',
        headers={"Content-Type": "text/plain"},
    )
    error = assert_error(response, 415, "unsupported_media_type")
    assert "Content-Type: application/json" in error["message"]
    fetched = await api.client.get(f"/v1/harnesses/{created.json()['id']}")
    assert fetched.json()["description"] != "changed"


@pytest.mark.parametrize(
    ("number", "content_type"),
    list(enumerate(["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"])),
)
async def test_json_content_types_are_accepted(api: Api, number: int, content_type: str) -> None:
    response = await api.client.post(
        "/v1/harnesses",
        content=orjson.dumps({"name": f"json-{number}"}),
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 201, response.text


async def test_a_bad_json_body_still_gets_a_validation_error(api: Api) -> None:
    # The right content type and the wrong shape: the problem is the value, not the header.
    response = await api.client.post(
        "/v1/harnesses", content=b'{"name": 5}', headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "validation_error", field="name")


async def test_a_body_with_no_content_type_is_told_to_send_it(api: Api) -> None:
    before = await _harness_names(api)
    request = api.client.build_request("POST", "/v1/harnesses", content=b'{"name": "untyped"}')
    assert "content-type" not in request.headers
    response = await api.client.send(request)
    error = assert_error(response, 415, "unsupported_media_type")
    assert "'Content-Type: application/json' (it came with no Content-Type)" in error["message"]
    assert await _harness_names(api) == before


async def test_a_missing_body_is_a_validation_error(api: Api) -> None:
    response = await api.client.post("/v1/harnesses")
    error = assert_error(response, 422, "validation_error", field="body")
    assert error["details"] == [{"field": "body", "message": "Field required"}]


async def test_a_request_without_a_body_needs_no_content_type(api: Api) -> None:
    created = await api.client.post("/v1/harnesses", json={"name": "bodiless"})
    assert created.status_code == 201, created.text
    response = await api.client.delete(f"/v1/harnesses/{created.json()['id']}")
    assert response.status_code == 204, response.text
