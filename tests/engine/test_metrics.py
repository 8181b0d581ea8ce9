"""``GET /metrics`` (issue 24): Prometheus text that ``prometheus_client``'s parser reads,
counters that move by what a known workload did, and only for the instance's operators."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.api.conftest import OtherOrg, assert_error
from tests.api.conftest import other_org as other_org  # the fixture
from tests.conftest import Api
from tests.engine.conftest import new_session, send, wait_turns_ended

from everloop.config import Settings
from everloop.services.observability import MetricsService

pytestmark = pytest.mark.timeout(60)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("http://everloop.test/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_counters_move_by_what_a_turn_did(engine: Api) -> None:
    script = {
        "response": {"type": "fixed", "text": "Done."},
        "tool_calls": [
            {"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}},
            {"when": "add", "name": "divide", "arguments": {"a": 1, "b": 0}},
        ],
    }
    sid = await new_session(engine, script, capabilities=[{"ref": "test_math"}])
    before = await scrape(engine.client)
    await send(engine, sid, "add and divide")
    found = await wait_turns_ended(engine, sid)
    after = await scrape(engine.client)

    assert delta(before, after, "everloop_turns_started_total") == 1
    assert delta(before, after, "everloop_turns_ended_total", status="completed") == 1
    assert delta(before, after, "everloop_turns_ended_total", status="failed") == 0
    assert delta(before, after, "everloop_turn_duration_seconds_count") == 1
    assert delta(before, after, "everloop_tool_calls_total", tool="add", outcome="ok") == 1
    assert delta(before, after, "everloop_tool_calls_total", tool="divide", outcome="error") == 1
    assert delta(before, after, "everloop_tool_call_duration_seconds_count", tool="add") == 1

    generations = [e["data"]["metadata"] for e in found if e["type"] == "llm.generation"]
    model = generations[0]["model"]
    for kind in ("input", "output"):
        spent = sum(g["usage"][f"{kind}_tokens"] for g in generations)
        assert spent > 0
        assert delta(before, after, "everloop_model_tokens_total", model=model, kind=kind) == spent
    calls = delta(
        before, after, "everloop_model_call_duration_seconds_count", model=model, outcome="ok"
    )
    assert calls == len(generations) == 2
    # The first call only asked for tools: no text, no first token.
    assert delta(before, after, "everloop_time_to_first_token_seconds_count", model=model) == 1

    posted = delta(
        before,
        after,
        "everloop_http_requests_total",
        method="POST",
        route="/api/v1/sessions/{session_id}/messages",
        status="201",
    )
    assert posted == 1
    assert delta(before, after, "everloop_db_transaction_seconds_count", kind="write") > 0
    assert after[("everloop_running_turns", ())] == 0
    assert after[("everloop_queued_turns", ())] == 0
    assert after[("everloop_sse_subscribers", ())] == 0


async def test_a_tenant_or_nobody_is_refused(engine: Api, other_org: OtherOrg) -> None:
    tenant = await other_org.client.get("http://everloop.test/metrics")
    assert_error(tenant, 404, "not_found")
    assert "everloop_" not in tenant.text
    async with engine.anonymous() as anonymous:
        nobody = await anonymous.get("http://everloop.test/metrics")
    assert_error(nobody, 401, "unauthorized")


async def test_allowed_addresses_scrape_without_a_token(engine: Api) -> None:
    svc = engine.services
    allowed = Settings(metrics_allow_ips="10.0.0.0/8, 127.0.0.1").metrics_networks
    scraper = MetricsService(svc.db, svc.auth, lambda: 0, allowed)
    body = await scraper.scrape(None, None, "10.1.2.3")
    assert ("everloop_running_turns", ()) in parse(body.decode())
    from everloop.errors import Unauthenticated

    with pytest.raises(Unauthenticated):
        await scraper.scrape(None, None, "192.168.1.1")
