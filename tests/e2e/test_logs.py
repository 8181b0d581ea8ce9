"""The server log keeps no query string of an outbound URL (issue 13, item 11): a real
``everloop serve`` fetches a local page whose URL carries a credential in its query."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import Api, Server
from tests.local_web import LocalWeb

pytestmark = pytest.mark.slow

SECRET = "sk-query-secret-4711"


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    """The page is on loopback: the server allows it as an operator would."""
    return start_server(EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8")


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    with LocalWeb() as server:
        yield server


def test_a_fetched_urls_query_is_not_logged(api: Api, web: LocalWeb) -> None:
    url = f"{web.url}/text?api_key={SECRET}#part"
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "fetch", "name": "web_fetch", "arguments": {"url": url}}],
    }
    session = api.create_session(
        api.llmsim_model(script),
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": ["127.0.0.1"]},
    )
    api.post_message(session, "please fetch it")
    done = api.wait_type(session, "tool.completed")
    assert [e["data"]["success"] for e in done if e["type"] == "tool.completed"] == [True]
    assert f"/text?api_key={SECRET}" in web.requests  # the query did go out

    log = api.server.log()
    assert f"{web.url}/text" in log  # the request is logged...
    assert SECRET not in log  # ...without its query
