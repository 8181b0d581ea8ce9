"""Session key-values, secrets and resources over REST, with their bad inputs."""

from __future__ import annotations

import pytest

from tests.api.conftest import OtherOrg, assert_error, create_session
from tests.conftest import Api

MISSING = "session_" + "0" * 32


async def test_secrets_are_set_in_a_batch_and_listed_by_name_only(api: Api) -> None:
    sid = (await create_session(api))["id"]
    url = f"/v1/sessions/{sid}/storage/secrets"
    assert (await api.client.get(url)).json() == {"data": [], "total": 0}
    put = await api.client.put(url, json={"secrets": {"B_TOKEN": "b-value", "A_KEY": "a-value"}})
    assert put.status_code == 200 and put.json() == {"count": 2}
    again = await api.client.put(url, json={"secrets": {"A_KEY": "a-2"}})
    assert again.json() == {"count": 1}
    listed = await api.client.get(url)
    assert [s["name"] for s in listed.json()["data"]] == ["A_KEY", "B_TOKEN"]
    assert "value" not in listed.text and "a-2" not in listed.text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"secrets": []},
        {"secrets": {"1BAD": "x"}},
        {"secrets": {"has space": "x"}},
        {"secrets": {"OK": 5}},
        {"secrets": {f"K{i}": "v" for i in range(101)}},
    ],
)
async def test_bad_secret_batches_are_422(api: Api, body: dict[str, object]) -> None:
    sid = (await create_session(api))["id"]
    response = await api.client.put(f"/v1/sessions/{sid}/storage/secrets", json=body)
    assert_error(response, 422)
    assert (await api.client.get(f"/v1/sessions/{sid}/storage/secrets")).json()["data"] == []


async def test_keys_and_resources_of_a_new_session_are_empty(api: Api) -> None:
    sid = (await create_session(api))["id"]
    assert (await api.client.get(f"/v1/sessions/{sid}/storage/keys")).json() == {
        "data": [],
        "total": 0,
    }
    assert (await api.client.get(f"/v1/sessions/{sid}/resources")).json() == []


async def test_unknown_and_foreign_sessions_are_404(api: Api, other_org: OtherOrg) -> None:
    sid = (await create_session(api))["id"]
    await api.client.put(f"/v1/sessions/{sid}/storage/secrets", json={"secrets": {"A": "x"}})
    for client, session_id in ((api.client, MISSING), (other_org.client, sid)):
        base = f"/v1/sessions/{session_id}"
        assert_error(await client.get(f"{base}/storage/keys"), 404)
        assert_error(await client.get(f"{base}/storage/secrets"), 404)
        put = await client.put(f"{base}/storage/secrets", json={"secrets": {"A": "stolen"}})
        assert_error(put, 404)
        assert_error(await client.get(f"{base}/resources"), 404)
    assert_error(await api.client.get("/v1/sessions/not-an-id/storage/keys"), 422)
    names = (await api.client.get(f"/v1/sessions/{sid}/storage/secrets")).json()["data"]
    assert [n["name"] for n in names] == ["A"]
