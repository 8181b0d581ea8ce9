"""User connections through the published ``everruns-sdk`` (``client.connections``) against a
real ``everloop serve``: set, list, remove; a session created afterwards has the connection as
a secret, a turn's ``web_fetch`` sends its value to a local server through a
``{{secret:NAME}}`` placeholder, and the value is in no API response and no server log line
(at DEBUG)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from everruns_sdk import Everruns
from everruns_sdk.errors import ApiError, NotFoundError
from everruns_sdk.models import Connection

from tests.e2e.conftest import Api, Server
from tests.local_web import LocalWeb

pytestmark = pytest.mark.slow

DAYTONA_KEY = "dtn-e2e-6b1f93a0c47d25e8-keep-out"
GITHUB_KEY = "ghp_e2e0a1b2c3d4e5f6a7b8c9d0e1f2a3b4"


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    """The page is on loopback (allowed as an operator would); the log at its most talkative."""
    return start_server(
        EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8", EVERLOOP_LOG_LEVEL="DEBUG"
    )


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    with LocalWeb() as page:
        yield page


def test_connections_through_the_sdk_reach_new_sessions_as_secrets(
    api: Api, server: Server, web: LocalWeb
) -> None:
    async def set_and_list() -> tuple[Connection, list[Connection]]:
        client = Everruns(api_key=server.token, base_url=server.api_url)
        try:
            first = await client.connections.set("daytona", DAYTONA_KEY)
            await client.connections.set("daytona", DAYTONA_KEY)  # replacing answers 200
            await client.connections.set("github", GITHUB_KEY)
            with pytest.raises(ApiError) as bad:
                await client.connections.set("Not_A_Slug", "x")
            assert bad.value.status_code == 422 and "provider" in bad.value.message
            with pytest.raises(NotFoundError):
                await client.connections.remove("nobody")
            return first, await client.connections.list()
        finally:
            await client.close()

    first, listed = asyncio.run(set_and_list())
    assert first.provider == "daytona" and first.created_at and first.updated_at
    assert [c.provider for c in listed] == ["daytona", "github"]

    url = f"{web.url}/text?key={{{{secret:DAYTONA_API_KEY}}}}"
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "fetch", "name": "web_fetch", "arguments": {"url": url}}],
    }
    session = api.create_session(
        api.llmsim_model(script),
        capabilities=[{"ref": "web_fetch"}, {"ref": "secrets"}],
        network_access={"allowed": ["127.0.0.1"]},
    )
    names = api.ok(api.http.get(f"sessions/{session}/storage/secrets"))["data"]
    assert [n["name"] for n in names] == ["DAYTONA_API_KEY", "GITHUB_TOKEN"]
    api.post_message(session, "please fetch it")
    done = api.wait_type(session, "tool.completed")
    assert [e["data"]["success"] for e in done if e["type"] == "tool.completed"] == [True]
    assert web.requests == [f"/text?key={DAYTONA_KEY}"]  # the tool got the value

    async def remove() -> list[Connection]:
        client = Everruns(api_key=server.token, base_url=server.api_url)
        try:
            await client.connections.remove("daytona")
            return await client.connections.list()
        finally:
            await client.close()

    assert [c.provider for c in asyncio.run(remove())] == ["github"]
    later = api.create_session(api.llmsim_model(script))
    names = api.ok(api.http.get(f"sessions/{later}/storage/secrets"))["data"]
    assert [n["name"] for n in names] == ["GITHUB_TOKEN"]

    for path in (
        f"sessions/{session}",
        f"sessions/{session}/events",
        f"sessions/{session}/messages",
        f"sessions/{session}/storage/secrets",
        "sessions",
        "user/connections",
    ):
        response = api.http.get(path)
        assert response.status_code == 200, response.text
        assert DAYTONA_KEY not in response.text and GITHUB_KEY not in response.text, path
    log = server.log()
    assert f"{web.url}/text" in log  # the fetch is logged (DEBUG: HTTP clients too)...
    assert DAYTONA_KEY not in log and GITHUB_KEY not in log  # ...never the keys
