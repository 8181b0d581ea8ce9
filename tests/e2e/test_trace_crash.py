"""A turn resumed after ``kill -9`` continues its trace (issue 24).

A real ``everloop serve`` writes its spans to a file (``EVERLOOP_TRACE_FILE``: each span as it
ends, so what ended before the kill is there); it is killed during the turn's second model
call, restarted, and the turn completes. The spans of both processes share the turn's trace
id, and hang from the one root span (its id derived from the turn id) that the second process
ends. The second process also counts the turn as resumed in ``/metrics`` (read without a token
from an allowed address) and logs its end as a JSON line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from everloop.telemetry import tracing
from tests.e2e.conftest import Api, Server, wait_for
from tests.e2e.test_crash import SLOW_ADD, open_stream, read_until

pytestmark = pytest.mark.slow


@pytest.fixture
def spans_file(tmp_path: Path) -> Path:
    return tmp_path / "spans.jsonl"


@pytest.fixture
def server(start_server: Callable[..., Server], spans_file: Path) -> Server:
    return start_server(
        EVERLOOP_TRACE_FILE=str(spans_file),
        EVERLOOP_LOG_FORMAT="json",
        EVERLOOP_METRICS_ALLOW_IPS="127.0.0.1",
    )


def read_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_resumed_turn_continues_its_trace(server: Server, api: Api, spans_file: Path) -> None:
    model_id = api.llmsim_model(SLOW_ADD)
    session_id = api.create_session(model_id, capabilities=[{"ref": "test_math"}])
    with open_stream(server, session_id) as frames:
        seen: list[dict[str, Any]] = []
        read_until(frames, "session.started", seen)
        turn_id = api.post_message(session_id, "please add 2 and 3")["turn_id"]
        read_until(frames, "tool.completed", seen)
        first_pid = server.pid
        server.kill9()
    before = read_spans(spans_file)
    server.restart()
    api.wait_type(session_id, "session.idled")
    trace_hex = f"0x{tracing.turn_trace_id(turn_id):032x}"
    root_hex = f"0x{tracing.turn_root_span_id(turn_id):016x}"

    def turn_spans() -> list[dict[str, Any]] | None:
        found = [s for s in read_spans(spans_file) if s["context"]["trace_id"] == trace_hex]
        return found if any(s["parent_id"] is None for s in found) else None

    spans = wait_for(turn_spans, timeout=30, what="the root span of the turn")
    assert spans is not None
    assert trace_hex == "0x" + turn_id.removeprefix("turn_")

    # Before the kill: the first reason phase, its model call, the act phase and its tool.
    early = [s for s in before if s["context"]["trace_id"] == trace_hex]
    assert sorted(s["name"] for s in early if not s["name"].startswith("chat ")) == [
        "act",
        "execute_tool add",
        "reason",
    ]
    assert {s["resource"]["attributes"]["process.pid"] for s in early} == {first_pid}
    assert not [s for s in early if s["parent_id"] is None], "the root ended before the kill?"

    # One root, ended by the second process; every span of both hangs from it.
    [root] = [s for s in spans if s["parent_id"] is None]
    assert root["name"] == "turn" and root["context"]["span_id"] == root_hex
    assert root["attributes"]["everloop.turn.resumed"] is True
    assert root["attributes"]["everloop.turn.status"] == "completed"
    assert root["resource"]["attributes"]["process.pid"] == server.pid != first_pid
    by_id = {s["context"]["span_id"]: s for s in spans}
    for span in spans:
        node = span
        while node["parent_id"] is not None:
            node = by_id[node["parent_id"]]
        assert node is root, span["name"]
    phases = [s for s in spans if s["parent_id"] == root_hex]
    later = [s for s in phases if s["resource"]["attributes"]["process.pid"] == server.pid]
    assert ("reason", 2) in [(s["name"], s["attributes"]["everloop.iteration"]) for s in later]
    assert {s["resource"]["attributes"]["process.pid"] for s in spans} == {first_pid, server.pid}

    # The restarted process counts the turn as resumed, not started; no token needed from
    # the allowed address.
    with httpx.Client(timeout=10) as client:
        scraped = client.get(f"{server.base_url}/metrics")
    assert scraped.status_code == 200, scraped.text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    assert samples[("everloop_turns_resumed_total", ())] == 1
    assert samples[("everloop_turns_started_total", ())] == 0
    assert samples[("everloop_turns_ended_total", (("status", "completed"),))] == 1

    lines = [json.loads(x) for x in server.log().splitlines() if x.startswith("{")]
    [ended] = [x for x in lines if x["logger"] == "everloop.turns"]
    assert ended["turn"] == turn_id and ended["status"] == "completed"
    assert ended["resumed"] is True and ended["iterations"] == 2
    assert not [x for x in lines if server.token in json.dumps(x)]
    starts = [x for x in lines if x["message"] == "everloop started"]
    assert len(starts) == 2 and starts[-1]["url"] == f"{server.base_url}/api"
    assert [x["migrations"] for x in starts][-1] == "up to date"
