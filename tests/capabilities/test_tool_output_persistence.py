"""tool_output_persistence through real turns: web_fetch reads a local server (loopback allowed
for this module's processes, as in test_web_fetch), llmsim scripts the calls, and the saved file
is read back through the session files API and the model's own read_file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tests.conftest import Api
from tests.engine.conftest import new_session, scripted_model, send, wait_turns_ended
from tests.local_web import LocalWeb, sized_text

from everloop.capabilities.base import ToolContext
from everloop.capabilities.tool_output_persistence import PersistBigOutputs, output_path
from everloop.config import Settings
from everloop.domain.messages import ToolResultPart
from everloop.store.workspace_files import FileLimits

FIVE_MB = 5 * 1024 * 1024
PERSIST = {"ref": "tool_output_persistence"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Loopback reachable, and web_fetch allowed to return a body of 5 MiB whole."""
    return settings.model_copy(
        update={
            "egress_allowed_private_networks": "127.0.0.0/8",
            "web_fetch_max_bytes": 6 * 1024 * 1024,
            "web_fetch_max_chars": 6 * 1024 * 1024,
        }
    )


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    with LocalWeb() as server:
        yield server


def fetch_script(url: str) -> dict[str, Any]:
    return {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "fetch", "name": "web_fetch", "arguments": {"url": url}}],
    }


async def fetch_turn(
    api: Api, web: LocalWeb, path: str, capabilities: list[dict[str, Any]]
) -> tuple[str, dict[str, Any], str]:
    """One turn calling web_fetch(path): (session id, its tool.completed data, the answer)."""
    sid = await new_session(
        api,
        fetch_script(f"{web.url}{path}"),
        capabilities=[{"ref": "web_fetch"}, *capabilities],
        network_access={"allowed": ["127.0.0.1"]},
    )
    await send(api, sid, "please fetch it")
    found = await wait_turns_ended(api, sid)
    assert "turn.completed" in [e["type"] for e in found]
    (done,) = [e["data"] for e in found if e["type"] == "tool.completed"]
    answers = [e for e in found if e["type"] == "output.message.completed"]
    text = "".join(p.get("text", "") for p in answers[-1]["data"]["message"]["content"])
    return sid, dict(done), text


def result_text(done: dict[str, Any]) -> str:
    assert done["success"] is True, done
    return str(done["result"][0]["text"])


async def test_a_5_mb_output_is_saved_whole_and_the_model_reads_a_summary(
    engine: Api, web: LocalWeb
) -> None:
    sid, done, answer = await fetch_turn(engine, web, f"/sized?bytes={FIVE_MB}", [PERSIST])
    path = output_path(done["tool_call_id"])
    assert path == f"/outputs/{done['tool_call_id']}.txt"

    downloaded = await engine.client.get(f"/v1/sessions/{sid}/fs/_/download{path}")
    assert downloaded.status_code == 200, downloaded.text
    saved = json.loads(downloaded.content)
    body = sized_text(FIVE_MB).decode()
    assert saved["content"] == body and saved["status"] == 200  # all 5 MiB, exactly
    # The file is the result as indented JSON, byte for byte.
    assert downloaded.content == json.dumps(saved, ensure_ascii=False, indent=2).encode()

    summary = result_text(done)
    assert len(summary) < 5000
    file_text = downloaded.content.decode()
    assert path in summary and "read_file" in summary
    assert f"{len(downloaded.content)} bytes" in summary
    assert file_text[:2000] in summary and file_text[-1000:] in summary
    assert file_text[3000:3100] not in summary
    # What the model saw is the summary (llmsim's echo repeats the results it was given).
    assert path in answer and len(answer) < 6000

    listed = await engine.client.get(f"/v1/sessions/{sid}/fs/outputs")
    assert [f["path"] for f in listed.json()["data"]] == [path]
    read = await engine.client.get(f"/v1/sessions/{sid}/fs{path}")
    assert read.status_code == 200
    assert read.json()["content"] == file_text and read.json()["size_bytes"] > FIVE_MB


async def test_head_and_tail_follow_the_config(engine: Api, web: LocalWeb) -> None:
    config = {"threshold_bytes": 1024, "head_chars": 10, "tail_chars": 5}
    sid, done, _ = await fetch_turn(
        engine, web, "/sized?bytes=4000", [{**PERSIST, "config": config}]
    )
    summary = result_text(done)
    downloaded = await engine.client.get(
        f"/v1/sessions/{sid}/fs/_/download{output_path(done['tool_call_id'])}"
    )
    text = downloaded.content.decode()
    assert f"\n{text[:10]}\n" in summary and summary.endswith(f"\n{text[-5:]}")
    assert "first 10 and last 5 characters" in summary


async def test_a_small_output_is_left_alone(engine: Api, web: LocalWeb) -> None:
    sid, done, _ = await fetch_turn(engine, web, "/text", [PERSIST])
    assert json.loads(result_text(done))["content"] == "plain words"
    missing = await engine.client.get(f"/v1/sessions/{sid}/fs/outputs")
    assert missing.status_code == 404


async def test_without_the_capability_a_big_output_is_recorded_whole(
    engine: Api, web: LocalWeb
) -> None:
    sid, done, _ = await fetch_turn(engine, web, "/sized?bytes=40000", [])
    assert json.loads(result_text(done))["content"] == sized_text(40000).decode()
    missing = await engine.client.get(f"/v1/sessions/{sid}/fs/outputs")
    assert missing.status_code == 404


async def test_the_model_reads_the_saved_output_with_read_file(engine: Api, web: LocalWeb) -> None:
    config = {"threshold_bytes": 1024}
    sid, done, _ = await fetch_turn(
        engine, web, "/sized?bytes=300000", [{**PERSIST, "config": config}]
    )
    path = output_path(done["tool_call_id"])
    # The next turn's model reads lines 3 and 4 of the file, as the summary tells it to.
    reader = await scripted_model(
        engine,
        {
            "response": {"type": "echo"},
            "tool_calls": [
                {
                    "when": "read",
                    "name": "read_file",
                    "arguments": {"path": path, "offset": 3, "limit": 2},
                }
            ],
        },
    )
    posted = await engine.client.post(
        f"/v1/sessions/{sid}/messages",
        json={
            "message": {"role": "user", "content": [{"type": "text", "text": "read it"}]},
            "controls": {"model_id": reader},
        },
    )
    assert posted.status_code == 201, posted.text
    found = await wait_turns_ended(engine, sid, count=2)
    read = [e["data"] for e in found if e["type"] == "tool.completed"][-1]
    assert read["tool_name"] == "read_file"
    result = json.loads(result_text(read))
    downloaded = await engine.client.get(f"/v1/sessions/{sid}/fs/_/download{path}")
    lines = downloaded.content.decode().splitlines(keepends=True)
    assert result["content"] == "".join(lines[2:4]) and result["total_lines"] == len(lines)


async def test_an_unknown_config_key_is_refused(api: Api) -> None:
    created = await api.client.post(
        "/v1/sessions",
        json={"capabilities": [{**PERSIST, "config": {"threshold": 10}}]},
    )
    assert created.status_code == 422, created.text
    assert "capabilities" in created.text


async def _filtered(api: Api, session_id: str, limits: FileLimits, text: str) -> str:
    """The result the filter leaves for a call ``call_rerun`` of ``text``, in a transaction of
    its own (as a step's), committed."""
    persist = PersistBigOutputs(limits)
    async with api.services.db.write() as conn:
        context = ToolContext(session_id, api.org_id, "turn_x", "call_rerun", connection=conn)
        part = ToolResultPart("call_rerun", "web_fetch", text)
        filtered = await persist(part, {"threshold_bytes": 1024}, context)
    assert isinstance(filtered.result, str)
    return filtered.result


async def test_a_rerun_of_the_step_overwrites_the_same_file(api: Api) -> None:
    # A step re-run after a crash runs the filter again: the same path, no error.
    sid = await new_session(api)
    text = sized_text(5000).decode()
    first = await _filtered(api, sid, FileLimits(), text)
    again = await _filtered(api, sid, FileLimits(), text)
    assert first == again and "saved whole to the file /outputs/call_rerun.txt" in first
    downloaded = await api.client.get(f"/v1/sessions/{sid}/fs/_/download/outputs/call_rerun.txt")
    assert downloaded.content == text.encode()


async def test_an_output_over_the_file_limit_is_cut_and_the_model_told_why(api: Api) -> None:
    sid = await new_session(api)
    text = sized_text(5000).decode()
    shown = await _filtered(api, sid, FileLimits(file_max_bytes=2000), text)
    assert "could not be saved to a file" in shown and "limit is 2000" in shown
    assert text[:2000] in shown and text[-1000:] in shown
    missing = await api.client.get(f"/v1/sessions/{sid}/fs/outputs")
    assert missing.status_code == 404  # nothing left behind, not even the directory
