"""The ``Everruns-Change-Reason`` header (the SDK's ``with_reason``): a valid reason lands in
the agent's version history; an invalid one is a 400 ``invalid_change_reason`` and writes
nothing."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from everloop.domain.change_reasons import InvalidChangeReason, parse_change_reason
from tests.api.conftest import create_agent
from tests.conftest import Api

HEADER = "Everruns-Change-Reason"


async def test_a_reason_becomes_the_versions_summary(api: Api) -> None:
    agent = await create_agent(api, "reasoned", system_prompt="One.")
    reason = "Shorter answers — asked for by support\nsee ticket 12"
    response = await api.client.patch(
        f"/v1/agents/{agent['id']}",
        json={"system_prompt": "Two."},
        headers={HEADER: quote(reason, safe="")},
    )
    assert response.status_code == 200, response.text
    listed = (await api.client.get(f"/v1/agents/{agent['id']}/versions")).json()
    assert [v["summary"] for v in listed] == [reason, None]
    saved = await api.client.post(
        f"/v1/agents/{agent['id']}/versions",
        json={"summary": "explicit"},
        headers={HEADER: "ignored%20here"},
    )
    assert saved.json()["summary"] == "explicit"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (quote("x" * 1001), "at most 1000"),
        (quote("bell\x07"), "control characters"),
        (quote("rotated key sk-abcdefghijklmnopqrstuvwxyz"), "credential"),
        (quote("password=hunter22x"), "credential"),
        ("%ff%fe", "UTF-8"),
    ],
)
async def test_an_invalid_reason_is_a_400_and_writes_nothing(api: Api, raw: str, says: str) -> None:
    agent = await create_agent(api, "guarded", system_prompt="One.")
    response = await api.client.patch(
        f"/v1/agents/{agent['id']}", json={"system_prompt": "Two."}, headers={HEADER: raw}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_change_reason"
    assert says in response.json()["error"]["message"]
    after = (await api.client.get(f"/v1/agents/{agent['id']}")).json()
    assert after["system_prompt"] == "One."


def test_blank_and_ordinary_reasons() -> None:
    assert parse_change_reason("%20%20") is None
    assert parse_change_reason("fix%20the%20token%3A%20because%20it%20expired") == (
        "fix the token: because it expired"
    )
    assert parse_change_reason(quote("tabs\tand\nnewlines")) == "tabs\tand\nnewlines"
    with pytest.raises(InvalidChangeReason):
        parse_change_reason(quote("AKIAABCDEFGHIJKLMNOP leaked"))
