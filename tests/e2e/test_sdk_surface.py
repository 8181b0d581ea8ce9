"""Every management method of the published ``everruns-sdk``, called against a real
``everloop serve`` (issue 17).

The methods are *enumerated* from the SDK by introspection: the public methods of ``Everruns``
and of each sub-client its properties return. The scenarios below drive a recording client; the
test then requires the set of methods actually called to equal the set enumerated, minus a short
list owned by other open issues. Each call's answer is checked against the method's own return
annotation with pydantic, i.e. parsed by the SDK's own models. A method added to the SDK later
fails this test until a scenario calls it.

Runs on SQLite, and on PostgreSQL when ``EVERLOOP_TEST_POSTGRES_URL`` is set (the ``server``
fixture gives each test its own database).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import secrets
import typing
from collections.abc import Callable
from typing import Any

import pytest
from everruns_sdk import Everruns
from everruns_sdk import client as sdk_client
from everruns_sdk.errors import ApiError
from everruns_sdk.models import (
    AgentCapabilityConfig,
    ContentPart,
    InitialFile,
    ToolDefinition,
    extract_tool_calls,
)
from pydantic import BaseModel, TypeAdapter

from tests.e2e.conftest import Api, Server

pytestmark = pytest.mark.slow

# Methods other open issues own, each with its reason. Keep this list short and honest: when
# an issue lands, its methods leave this list and a scenario below calls them. Empty: every
# method of the SDK is called by a scenario.
OWNED_ELSEWHERE: dict[str, str] = {}


def _public_methods(cls: type) -> list[str]:
    return sorted(
        name
        for name, member in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(member)
    )


def _sub_clients() -> dict[str, type]:
    """``Everruns``' properties that hand out a sub-client, by property name."""
    found: dict[str, type] = {}
    for name, member in vars(Everruns).items():
        if isinstance(member, property) and member.fget is not None:
            returned = typing.get_type_hints(member.fget, vars(sdk_client)).get("return")
            if isinstance(returned, type) and returned.__name__.endswith("Client"):
                found[name] = returned
    return found


def enumerate_sdk() -> set[str]:
    methods = set(_public_methods(Everruns))
    for prop, cls in _sub_clients().items():
        methods.update(f"{prop}.{name}" for name in _public_methods(cls))
    return methods


class Recording:
    """What the scenarios called, and every answer checked against its return annotation."""

    def __init__(self) -> None:
        self.called: set[str] = set()

    def check(self, qualified: str, method: Callable[..., Any], result: Any) -> None:
        hints = typing.get_type_hints(method, vars(sdk_client))
        returned = hints.get("return")
        if isinstance(returned, type) and not issubclass(returned, BaseModel):
            assert isinstance(result, returned), (qualified, result)
        elif returned is not None:
            TypeAdapter(returned).validate_python(result)
        self.called.add(qualified)


class _Recorded:
    """A proxy over the SDK client (or one of its sub-clients) recording each public call."""

    def __init__(self, target: Any, prefix: str, recording: Recording) -> None:
        self._target = target
        self._prefix = prefix
        self._recording = recording

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name.startswith("_"):
            return attr
        qualified = f"{self._prefix}{name}"
        if type(attr).__name__.endswith("Client") and not callable(attr):
            return _Recorded(attr, f"{name}.", self._recording)
        if not callable(attr):
            return attr
        method = getattr(type(self._target), name)
        recording = self._recording

        if inspect.iscoroutinefunction(attr):

            async def call_async(*args: Any, **kwargs: Any) -> Any:
                result = await attr(*args, **kwargs)
                recording.check(qualified, method, result)
                return result

            return call_async

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if isinstance(result, Everruns):
                recording.check(qualified, method, result)
                return _Recorded(result, "", recording)
            recording.check(qualified, method, result)
            return result

        return call


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


WEATHER = {
    "type": "client_side",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


async def _wait_turn(client: Any, session_id: str) -> str:
    """Follow the session's SSE stream until its turn ends; the ending event's type."""
    async for event in client.events.stream(session_id):
        if event.type in {"turn.completed", "turn.failed", "turn.cancelled", "turn.sealed"}:
            return str(event.type)
    raise AssertionError("the stream ended before the turn did")


async def models_capabilities_harnesses(client: Any, model_id: str) -> None:
    models = await client.models.list()
    assert model_id in {m.id for m in models}
    model = await client.models.get(model_id)
    assert model.id == model_id and model.provider_type == "llmsim"

    page = await client.capabilities.list_page(limit=2)
    assert len(page.data) == 2 and page.total >= 2
    listed = await client.capabilities.list(search="time")
    assert "current_time" in {c.id for c in listed}
    assert (await client.capabilities.get("current_time")).id == "current_time"
    gallery = await client.capabilities.list_guardrail_examples()
    preset = next(e for e in gallery.examples if e.name == "profanity")
    dry = await client.capabilities.dry_run_guardrails(preset.config, "output", "oh darn")
    assert dry.blocked and dry.hits[0].check_id == "profanity"

    name = unique("harness")
    harness = await client.harnesses.create(
        name,
        "You are careful.",
        capabilities=[AgentCapabilityConfig(ref="current_time")],
    )
    assert (await client.harnesses.get(harness.id)).name == name
    assert harness.id in {h.id for h in await client.harnesses.list()}
    assert [h.id for h in await client.harnesses.search(name)] == [harness.id]
    updated = await client.harnesses.update(harness.id, description="Updated.")
    assert updated.description == "Updated."
    await client.harnesses.delete(harness.id)
    examples = await client.harnesses.list_examples()
    assert examples and all(e.name and e.display_name for e in examples)


async def agents_and_versions(client: Any, model_id: str) -> None:
    name = unique("surface-agent")
    agent = await client.agents.create(
        name, "You answer briefly.", default_model_id=model_id, tags=["surface"]
    )
    assert (await client.agents.get(agent.id)).name == name
    assert [a.id for a in await client.agents.list(search=name)] == [agent.id]
    reasoned = client.with_reason("support asked for brevity")
    applied = await reasoned.agents.apply(agent.id, name, "You answer very briefly.")
    assert applied.id == agent.id and applied.system_prompt == "You answer very briefly."
    latest = (await client.agents.list_versions(agent.id))[0]
    assert latest.summary == "support asked for brevity"
    upserted = await client.agents.apply_by_name(name, "You answer in one line.")
    assert upserted.id == agent.id

    first = await client.agents.create_version(agent.id, change_kind="minor", summary="one line")
    await client.agents.apply(agent.id, name, "You answer in two lines.")
    second = await client.agents.create_version(agent.id, summary="two lines")
    versions = await client.agents.list_versions(agent.id)
    assert {first.id, second.id} <= {v.id for v in versions}
    diff = await client.agents.diff_versions(agent.id, first.id, second.id)
    assert diff.authored_diff["system_prompt"]["to"] == "You answer in two lines."
    defaulted = await client.agents.set_default_version(agent.id, first.id)
    assert defaulted.default_version_id == first.id
    rolled = await client.agents.rollback_version(agent.id, first.id, summary="back")
    assert rolled.system_prompt == "You answer in one line."
    forked = await client.agents.fork_version(agent.id, second.id, name=unique("forked"))
    assert forked.id != agent.id and forked.system_prompt == "You answer in two lines."

    stats = await client.agents.stats(agent.id)
    assert stats.session_count == 0
    copy = await client.agents.copy(agent.id)
    assert copy.system_prompt == rolled.system_prompt
    document = await client.agents.export(agent.id)
    imported = await client.agents.import_agent(document.replace(name, unique("imported"), 1))
    assert imported.system_prompt == rolled.system_prompt
    analysis = await client.agents.analyze(
        "Be brief.", tools=[{"name": "undocumented", "parameters": {"type": "object"}}]
    )
    assert "tools.missing_description" in {f.rule_id for f in analysis.findings}
    from_example = await client.agents.import_example("dad-jokes-agent")
    assert from_example.name == "dad-jokes-agent" and from_example.system_prompt
    for made in (copy, imported, forked, from_example, agent):
        await client.agents.delete(made.id)


async def health_checks(client: Any, model_id: str) -> None:
    """A run of one case (the org default model judges: its echo is no verdict, so the case
    fails with that reason), read back while and after it runs."""
    case = {"name": "greets", "user_message": "Say hello.", "rubric": "Greets the user."}
    agent = await client.agents.create(
        unique("checked"),
        "You greet.",
        default_model_id=model_id,
        capabilities=[AgentCapabilityConfig(ref="health_check", config={"cases": [case]})],
    )
    run = await client.agents.trigger_health_check(agent.id)
    assert run.status == "pending" and run.id.startswith("healthcheck_")
    for _ in range(1200):  # bounded: the wait_for of the caller ends it first
        run = await client.agents.get_health_check(agent.id, run.id)
        if run.status in ("completed", "failed"):
            break
        await asyncio.sleep(0.05)
    assert run.status == "completed", run
    assert run.summary is not None and run.summary.total == 1
    assert [r.id for r in await client.agents.list_health_checks(agent.id)] == [run.id]


async def sessions_messages_events(client: Any, model_id: str, api: Api) -> None:
    agent = await client.agents.create(
        unique("weather"),
        "You are a weather assistant; call get_weather and summarise.",
        default_model_id=model_id,
        tools=[ToolDefinition(**WEATHER)],
    )
    session = await client.sessions.create(
        agent_id=agent.id,
        title="Surface",
        tools=[ToolDefinition(**WEATHER)],  # repeats the agent's tool: merged, not refused
        initial_files=[InitialFile(path="/workspace/README.md", content="# Demo\n")],
    )
    assert (await client.sessions.get(session.id)).title == "Surface"
    assert session.id in {s.id for s in await client.sessions.list(agent_id=agent.id)}
    await client.sessions.pin(session.id)
    assert (await client.sessions.get(session.id)).is_pinned is True
    await client.sessions.unpin(session.id)
    await client.sessions.set_secrets(session.id, {"WEATHER_KEY": "s3cret"})

    sent = await client.messages.create(session.id, "What is the weather in Paris?")
    assert sent.role == "user"
    async for event in client.events.stream(session.id):
        if event.type == "tool.call_requested":
            calls = extract_tool_calls(event.data)
            assert [c.name for c in calls] == ["get_weather"]
            results = [
                ContentPart.make_tool_result(c.id, {"city": "Paris", "celsius": 18}) for c in calls
            ]
            await client.messages.create_tool_results(session.id, results)
        if event.type in {"turn.completed", "turn.failed"}:
            assert event.type == "turn.completed"
            break
    messages = await client.messages.list(session.id)
    assert [messages[0].role, messages[-1].role] == ["user", "agent"]

    events = await client.events.list(session.id)
    typed = await client.events.list(session.id, types=["tool.call_requested"])
    assert [e.type for e in typed] == ["tool.call_requested"]
    assert [e.id for e in await client.events.list(session.id, tool_name="get_weather")]
    found = await client.events.list(session.id, q="Paris")
    assert found and all("Paris" in json.dumps(e.data) for e in found)
    middle = events[len(events) // 2]
    around = await client.events.list(session.id, around=middle.id, window=1)
    assert [e.id for e in around] == [e.id for e in events[len(events) // 2 - 1 :][:3]]

    exported = await client.sessions.export(session.id)
    lines = [json.loads(line) for line in exported.splitlines() if line.strip()]
    assert len(lines) > len(events)

    budget = await client.budgets.create("session", session.id, "tokens", 1)
    assert [b.id for b in await client.sessions.budgets(session.id)] == [budget.id]
    await client.messages.create(session.id, "And in Tokyo?")
    assert await _wait_turn(client, session.id) in {"turn.completed", "turn.failed"}
    check = await client.sessions.budget_check(session.id)
    assert check.budget_id == budget.id
    fetched = await client.budgets.get(budget.id)
    assert [b.id for b in await client.budgets.list(subject_id=session.id)] == [budget.id]
    raised = await client.budgets.update(budget.id, limit=fetched.limit + 100_000)
    topped = await client.budgets.top_up(budget.id, 10, description="surface")
    assert topped.limit == raised.limit
    assert await client.budgets.ledger(budget.id)
    await client.budgets.check(budget.id)
    resumed = await client.sessions.resume(session.id)
    assert resumed.session_id == session.id
    await client.budgets.delete(budget.id)

    await client.messages.create(session.id, "And in New York?")
    await client.sessions.cancel(session.id)
    assert await _wait_turn(client, session.id) in {"turn.completed", "turn.cancelled"}
    await client.sessions.delete(session.id)
    with pytest.raises(ApiError) as gone:
        await client.sessions.get(session.id)
    assert gone.value.status_code == 404
    await client.agents.delete(agent.id)


async def connections(client: Any) -> None:
    made = await client.connections.set("daytona", "dtn-secret-key")
    assert made.provider == "daytona"
    assert [c.provider for c in await client.connections.list()] == ["daytona"]
    await client.connections.remove("daytona")
    assert await client.connections.list() == []


async def memories(client: Any) -> None:
    """All 15 ``memories.*`` methods: a manual memory's CRUD and files, and a git memory whose
    sync the default egress policy refuses (recorded as ``last_sync_error``)."""
    name = unique("notes")
    made = await client.memories.create(name, description="Team notes")
    assert made.id.startswith("mem_") and made.source_type == "manual" and not made.is_readonly
    assert made.id in [m.id for m in await client.memories.list(search=name)]
    assert (await client.memories.get(made.id)).name == name
    renamed = await client.memories.update(made.id, description="What the team knows")
    assert renamed.description == "What the team knows"

    info = await client.memories.create_file(made.id, "/people/ada.md", "Ada likes tea\n")
    assert info.path == "/people/ada.md" and info.size_bytes == 14
    folder = await client.memories.create_dir(made.id, "/archive")
    assert folder.is_directory
    assert {f.path for f in await client.memories.list_files(made.id)} == {"/archive", "/people"}
    read = await client.memories.read_file(made.id, "/people/ada.md")
    assert read.content == "Ada likes tea\n" and read.encoding == "text"
    assert await client.memories.download_file(made.id, "people/ada.md") == "Ada likes tea\n"
    updated = await client.memories.update_file(made.id, "/people/ada.md", "Ada likes coffee")
    assert updated.content == "Ada likes coffee"
    [hit] = await client.memories.grep_files(made.id, "coffee", path_pattern="*.md")
    assert hit.path == "/people/ada.md"
    stat = await client.memories.stat_file(made.id, "/people")
    assert stat.is_directory
    await client.memories.delete_file(made.id, "/archive")
    assert [f.path for f in await client.memories.list_files(made.id)] == ["/people"]

    git = await client.memories.create(
        unique("handbook"),
        source={"type": "git", "url": "http://bot:tok-secret@127.0.0.1:9/handbook.git"},
    )
    assert git.is_readonly and git.source_type == "git"
    assert "tok-secret" not in json.dumps(git.model_dump())
    synced = await client.memories.sync(git.id)
    assert synced.sync_status == "failed" and "egress" in (synced.last_sync_error or "")

    await client.memories.delete(made.id)
    archived = await client.memories.list(include_archived=True)
    assert {m.id: m.status for m in archived}[made.id] == "archived"
    assert made.id not in [m.id for m in await client.memories.list()]


async def workspaces_and_files(client: Any) -> None:
    """Every ``workspaces.*`` and ``workspace_files.*`` method, each answer parsed by the SDK's
    models (the recording proxy checks the return annotations)."""
    name = unique("team")
    made = await client.workspaces.create(name, description="shared notes")
    assert made.id.startswith("wsp_") and made.status == "active"
    assert made.id in {w.id for w in await client.workspaces.list(search=name)}
    assert (await client.workspaces.get(made.id)).description == "shared notes"
    renamed = await client.workspaces.update(made.id, name=name + "-2")
    assert renamed.name == name + "-2"

    files = client.workspace_files
    created = await files.create(made.id, "/docs/notes.md", "hello\n")
    assert created.path == "/docs/notes.md" and created.content == "hello\n"
    assert (await files.create_dir(made.id, "/empty")).is_directory
    assert {f.path for f in await files.list(made.id)} == {"/docs", "/empty"}
    assert "/docs/notes.md" in {f.path for f in await files.list(made.id, recursive=True)}
    assert [f.name for f in await files.list(made.id, "/docs")] == ["notes.md"]
    assert (await files.read(made.id, "/docs/notes.md")).content == "hello\n"
    updated = await files.update(made.id, "/docs/notes.md", "hello there\n")
    assert updated.content == "hello there\n"
    [found] = await files.grep(made.id, "th.re", path_pattern="*.md")
    assert found.path == "/docs/notes.md" and found.matches[0].line_number == 1
    assert (await files.stat(made.id, "/docs/notes.md")).size_bytes == 12
    copied = await files.copy_file(made.id, "/docs/notes.md", "/copy.md")
    assert copied.content == "hello there\n"
    assert (await files.move_file(made.id, "/copy.md", "/old/copy.md")).path == "/old/copy.md"
    assert (await files.delete(made.id, "/docs", recursive=True)).deleted
    with pytest.raises(ApiError) as gone:
        await files.read(made.id, "/docs/notes.md")
    assert gone.value.status_code == 404

    await client.workspaces.delete(made.id)
    assert (await client.workspaces.get(made.id)).status == "archived"
    assert made.id not in {w.id for w in await client.workspaces.list()}
    assert made.id in {w.id for w in await client.workspaces.list(include_archived=True)}


WEATHER_SCRIPT = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "weather", "name": "get_weather", "arguments": {"city": "Paris"}}],
}


async def test_every_management_method_of_the_sdk_is_exercised(server: Server, api: Api) -> None:
    enumerated = enumerate_sdk()
    assert set(OWNED_ELSEWHERE) <= enumerated, "an exclusion names no SDK method"
    assert len(enumerated) >= 93

    model_id = await asyncio.to_thread(api.llmsim_model, WEATHER_SCRIPT)
    recording = Recording()
    raw = Everruns(api_key=server.token, base_url=server.api_url)
    client: Any = _Recorded(raw, "", recording)
    try:
        await asyncio.wait_for(models_capabilities_harnesses(client, model_id), 120)
        await asyncio.wait_for(agents_and_versions(client, model_id), 120)
        await asyncio.wait_for(health_checks(client, model_id), 60)
        await asyncio.wait_for(sessions_messages_events(client, model_id, api), 180)
        await asyncio.wait_for(connections(client), 60)
        await asyncio.wait_for(memories(client), 60)
        await asyncio.wait_for(workspaces_and_files(client), 60)
    finally:
        await client.close()

    missing = enumerated - set(OWNED_ELSEWHERE) - recording.called
    assert not missing, f"SDK methods no scenario called: {sorted(missing)}"
    assert not recording.called & set(OWNED_ELSEWHERE)
