"""web_fetch through real turns: the egress guard with the session's merged network access.

The local server is on loopback, which the operator's policy refuses by default: this module's
processes allow ``127.0.0.0/8`` (``EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS``) unless a test asks
for the default policy (``OPERATOR_DEFAULT``), and sessions still name the server to reach it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tests.conftest import Api
from tests.engine.conftest import new_session, send, wait_turns_ended
from tests.local_web import PAGE, LocalWeb

from everloop.capabilities import web_fetch
from everloop.capabilities.web_fetch import html_to_markdown
from everloop.config import Settings

OPERATOR_DEFAULT = pytest.mark.parametrize("settings", [""], indirect=True)


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The shared settings with the operator's private networks: loopback unless parametrized."""
    networks = getattr(request, "param", "127.0.0.0/8")
    return settings.model_copy(update={"egress_allowed_private_networks": networks})


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    with LocalWeb() as server:
        yield server


def fetch_script(url: str, **extra: Any) -> dict[str, Any]:
    arguments = {"url": url, **extra}
    return {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "fetch", "name": "web_fetch", "arguments": arguments}],
    }


async def fetch_once(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    """Run one turn that calls web_fetch(url); the tool.completed event's data."""
    extra = fields.pop("arguments", {})
    sid = await new_session(api, fetch_script(url, **extra), **fields)
    await send(api, sid, "please fetch it")
    found = await wait_turns_ended(api, sid)
    assert "turn.completed" in [e["type"] for e in found]
    (done,) = [e for e in found if e["type"] == "tool.completed"]
    return dict(done["data"])


def result_of(done: dict[str, Any]) -> dict[str, Any]:
    assert done["success"] is True, done
    return dict(json.loads(done["result"][0]["text"]))


def test_html_becomes_markdown_without_scripts_or_styles() -> None:
    title, text = html_to_markdown(PAGE)
    assert title == "Local page"
    assert text.startswith("# Hello egress")
    assert "**bold**" in text and "[link](/text)" in text and "* one" in text
    assert "alert" not in text and "color:red" not in text


async def test_an_allowed_local_page_is_fetched_as_markdown(engine: Api, web: LocalWeb) -> None:
    done = await fetch_once(
        engine,
        f"{web.url}/",
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": ["127.0.0.1"]},
    )
    result = result_of(done)
    assert result["status"] == 200 and result["title"] == "Local page"
    assert result["content"].startswith("# Hello egress")
    assert result["truncated"] is False


async def test_html_is_converted_off_the_event_loop(
    engine: Api, web: LocalWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Converting a page of a few MiB takes seconds of pure Python: not on the loop.
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def spy(html: str) -> tuple[str | None, str]:
        seen.append(threading.get_ident())
        return html_to_markdown(html)

    monkeypatch.setattr(web_fetch, "html_to_markdown", spy)
    done = await fetch_once(
        engine,
        f"{web.url}/",
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": ["127.0.0.1"]},
    )
    assert result_of(done)["title"] == "Local page"
    assert len(seen) == 1 and seen[0] != loop_thread


async def test_max_chars_cuts_the_text(engine: Api, web: LocalWeb) -> None:
    done = await fetch_once(
        engine,
        f"{web.url}/big",
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": [f"{web.url}/"]},
        arguments={"max_chars": 10},
    )
    result = result_of(done)
    assert result["content"] == "x" * 10 and result["truncated"] is True


async def test_loopback_is_refused_without_network_access(engine: Api, web: LocalWeb) -> None:
    done = await fetch_once(engine, f"{web.url}/", capabilities=[{"ref": "web_fetch"}])
    assert done["success"] is False
    assert "(private_address_not_named)" in done["error"] and "loopback" in done["error"]
    assert web.requests == []


@OPERATOR_DEFAULT
async def test_a_session_cannot_allow_loopback_past_the_operator(
    engine: Api, web: LocalWeb
) -> None:
    done = await fetch_once(
        engine,
        f"{web.url}/",
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": ["127.0.0.1", f"{web.url}/"]},
    )
    assert done["success"] is False and "(private_address)" in done["error"]
    assert web.requests == []


async def test_the_metadata_address_is_refused_even_when_allowed(engine: Api) -> None:
    done = await fetch_once(
        engine,
        "http://169.254.169.254/latest/meta-data/",
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": ["169.254.169.254"]},
    )
    assert done["success"] is False
    assert "(private_address)" in done["error"] and "link-local" in done["error"]


async def test_a_redirect_to_a_private_address_is_refused(engine: Api, web: LocalWeb) -> None:
    # The target is allowed too: only the operator's address policy can refuse it.
    done = await fetch_once(
        engine,
        f"{web.url}/redirect?to=http://10.1.2.3/",
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": [f"{web.url}/redirect", "10.1.2.3"]},
    )
    assert done["success"] is False and "(private_address)" in done["error"]
    assert web.requests == ["/redirect?to=http://10.1.2.3/"]


async def test_an_encoded_dot_segment_cannot_leave_an_allowed_path(
    engine: Api, web: LocalWeb
) -> None:
    done = await fetch_once(
        engine,
        f"{web.url}/public/%2e%2e/text",
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": [f"{web.url}/public/"]},
    )
    assert done["success"] is False and "(encoded_dot_segment)" in done["error"]
    assert web.requests == []


async def test_an_agent_block_wins_over_the_session_allow(engine: Api, web: LocalWeb) -> None:
    agent = await engine.client.post(
        "/v1/agents",
        json={
            "name": "blocked-fetcher",
            "system_prompt": "You fetch.",
            "capabilities": [{"ref": "web_fetch"}],
            "network_access": {"blocked": ["127.0.0.1"]},
        },
    )
    assert agent.status_code == 201, agent.text
    done = await fetch_once(
        engine,
        f"{web.url}/",
        agent_id=agent.json()["id"],
        network_access={"allowed": ["127.0.0.1"]},
    )
    assert done["success"] is False and "(blocked)" in done["error"]
    assert web.requests == []


async def test_binary_content_is_not_returned(engine: Api, web: LocalWeb) -> None:
    done = await fetch_once(
        engine,
        f"{web.url}/binary",
        capabilities=[{"ref": "web_fetch"}],
        network_access={"allowed": ["127.0.0.1"]},
    )
    assert done["success"] is False and "image/png" in done["error"]
