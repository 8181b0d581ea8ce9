"""The web console (issue 22) in a real, headless Chromium against a real ``everloop serve``.

One server serves the module (the restart test comes last and restarts it on the same data dir
and port); each test has a fresh browser context, so a fresh session storage and a sign-in.
The browser is Debian's ``chromium`` driven by Playwright (``executable_path``: Playwright never
downloads a browser here). Without it these tests skip, naming the package to install; CI
installs it (``.ci/run``).

Every wait is Playwright's own bounded wait on a condition in the page, or ``wait_for``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import POSTGRES_URL, Api, Server, _pg_conninfo, free_port, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("EVERLOOP_TEST_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 30_000
DASH = "\u2013"  # the en dash of the pager's "1-20 of 21"

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if shutil.which(CHROMIUM) is None:
    pytest.skip(
        f"no Chromium at {CHROMIUM}: apt-get install chromium (CI installs it)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=WAIT_MS)

LOCATE = {
    "type": "client_side",
    "name": "get_location",
    "description": "Where the user is.",
    "parameters": {"type": "object", "properties": {}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("console")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
    database = None
    if POSTGRES_URL:
        import psycopg
        from sqlalchemy.engine import make_url

        database = f"everloop_e2e_{secrets.token_hex(6)}"
        with psycopg.connect(_pg_conninfo(POSTGRES_URL), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        url = make_url(POSTGRES_URL).set(database=database)
        env["EVERLOOP_DATABASE_URL"] = url.render_as_string(hide_password=False)
    served = Server(root / "data", free_port(), env)
    try:
        served.start()
        yield served
    finally:
        served.stop()
        if database and POSTGRES_URL:
            import psycopg

            with psycopg.connect(_pg_conninfo(POSTGRES_URL), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture
def api(server: Server) -> Iterator[Api]:
    helper = Api(server)
    try:
        yield helper
    finally:
        helper.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: CI and these machines run as root, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert errors == [], f"errors in the page: {errors}"


def sign_in(page: Page, server: Server, token: str | None = None, where: str = "") -> None:
    page.goto(f"{server.base_url}/{where}")
    page.get_by_label("API token").fill(token or server.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#nav")).to_be_visible()


def send(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send", exact=True).click()


def agent_texts(page: Page) -> list[str]:
    texts: list[str] = page.locator(".msg.agent .text").all_inner_texts()
    return texts


def test_sign_in_with_the_keyboard_only(page: Page, server: Server) -> None:
    page.goto(f"{server.base_url}/")
    expect(page.get_by_label("API token")).to_be_focused()
    page.keyboard.type(server.token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()


def test_a_bad_token_shows_the_sign_in_page_with_the_reason(page: Page, server: Server) -> None:
    page.goto(f"{server.base_url}/#/sessions")
    page.get_by_label("API token").fill("evr_pat_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    reason = page.locator("#sign-in-reason")
    expect(reason).to_contain_text("The API refused the token:")
    expect(reason).to_contain_text("unauthorized")
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('everloop.token')") is None


def test_a_revoked_token_is_signed_out_with_the_reason(
    page: Page, server: Server, api: Api
) -> None:
    minted = api.ok(api.http.post("auth/api-keys", json={"name": "console-test"}), 201)
    sign_in(page, server, minted["key"])
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    api.ok(api.http.delete(f"auth/api-keys/{minted['id']}"), 204)
    page.get_by_role("link", name="Agents").click()
    expect(page.locator("#sign-in-reason")).to_contain_text("The API refused the token:")
    expect(page.get_by_label("API token")).to_be_visible()


def test_create_an_agent_and_a_session_and_see_the_streamed_answer_and_the_tool_call(
    page: Page, server: Server, api: Api
) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "time", "name": "get_current_time", "arguments": {}}],
        "chunk_chars": 4,
    }
    model_id = api.llmsim_model(script, name=f"console-{secrets.token_hex(3)}")
    sign_in(page, server, where="#/agents/new")
    page.get_by_label("Name", exact=True).fill("clock-agent")
    page.get_by_label("System prompt").fill("You tell the time.")
    page.get_by_label("Default model").select_option(model_id)
    page.get_by_role("checkbox", name="Current time current_time").check()
    page.get_by_role("button", name="Create agent").click()
    page.wait_for_url("**/#/agents/agent_*")
    agent_id = page.url.rsplit("/", 1)[1]
    agent = api.ok(api.http.get(f"agents/{agent_id}"))
    assert agent["system_prompt"] == "You tell the time."
    assert [c["ref"] for c in agent["capabilities"]] == ["current_time"]
    assert agent["default_model_id"] == model_id

    page.get_by_role("link", name="Sessions").click()
    page.get_by_text("New session").click()
    page.get_by_label("Agent", exact=True).first.select_option(agent_id)
    page.get_by_label("Title").fill("What time")
    page.get_by_role("button", name="Create session").click()
    page.wait_for_url("**/#/sessions/session_*")
    expect(page.locator("#stream-state")).to_have_text("live")

    send(page, "what time is it")
    tool = page.locator("details.tool", has_text="get_current_time")
    expect(tool.locator(".tool-status")).to_have_text("done")
    expect(tool.locator(".tool-duration")).to_contain_text("ms")
    tool.locator("summary").click()
    expect(tool.locator(".tool-output")).to_contain_text("timezone")
    answer = page.locator(".msg.agent", has_text="Echo: what time is it")
    expect(answer).to_contain_text("get_current_time:")
    # The answer was drawn from its deltas as they came, then settled by the completed message.
    assert int(answer.get_attribute("data-deltas") or 0) >= 1
    expect(page.locator("#session-status")).to_have_text("idle")
    expect(page.locator("#session-usage")).to_contain_text(" in / ")
    timeline = page.locator(".timeline li[data-type='turn.completed']")
    expect(timeline).to_have_count(1)
    timeline.locator("summary").click()
    expect(timeline.locator(".event-json")).to_contain_text('"final_message_id"')
    page.get_by_label("Types (comma-separated)").fill("tool.completed")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".timeline li")).to_have_count(1)
    expect(page.locator(".timeline li")).to_have_attribute("data-type", "tool.completed")


def test_edit_an_agent_then_diff_and_roll_back_its_versions(
    page: Page, server: Server, api: Api
) -> None:
    agent = api.ok(api.http.post("agents", json={"name": "poet", "system_prompt": "Rhyme."}), 201)
    sign_in(page, server, where=f"#/agents/{agent['id']}")
    page.get_by_label("System prompt").fill("Write free verse.")
    page.get_by_role("button", name="Preview context").click()
    expect(page.locator(".preview")).to_contain_text("prompt tokens")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#notice")).to_contain_text("Saved agent poet.")
    page.get_by_role("button", name="Show diff").click()
    diff = page.locator(".diff-table")
    expect(diff.locator("th[scope=row]")).to_have_text(["system_prompt"])
    expect(diff.locator(".before")).to_contain_text("Rhyme.")
    expect(diff.locator(".after")).to_contain_text("Write free verse.")
    page.get_by_role("button", name="Roll back to v0.1.0").click()
    expect(page.locator("#notice")).to_contain_text("Rolled back to v0.1.0.")
    expect(page.get_by_label("System prompt")).to_have_value("Rhyme.")
    assert api.ok(api.http.get(f"agents/{agent['id']}"))["system_prompt"] == "Rhyme."


def test_add_a_provider_with_a_write_only_key_and_a_model(
    page: Page, server: Server, api: Api
) -> None:
    sign_in(page, server, where="#/models")
    page.get_by_text("Add a provider").click()
    page.get_by_label("Name", exact=True).fill("local-openai")
    page.get_by_label("Driver").select_option("openai")
    page.get_by_label("Base URL").fill("http://127.0.0.1:9/v1")
    page.get_by_label("API key").fill("sk-console-test-secret")
    page.get_by_role("button", name="Add provider").click()
    row = page.locator("tr", has_text="local-openai")
    expect(row).to_contain_text("set")
    expect(page.get_by_label("API key")).to_have_value("")
    assert "sk-console-test-secret" not in page.content()
    page.get_by_text("Add a model").click()
    page.get_by_label("Provider", exact=True).select_option(label="local-openai")
    page.get_by_label("Model id (as the provider names it)").fill("gpt-test")
    page.get_by_role("button", name="Add model").click()
    expect(page.locator("tr", has_text="gpt-test")).to_contain_text("local-openai")


def test_set_the_organizations_default_model(page: Page, server: Server, api: Api) -> None:
    fixed = {"response": {"type": "fixed", "text": "from the default"}}
    model_id = api.llmsim_model(fixed, name="house-default")
    built_in = next(m for m in api.ok(api.http.get("models"))["data"] if m["is_built_in"])
    sign_in(page, server, where="#/models")
    expect(page.locator(f"tr[data-model-id='{built_in['id']}'] .default-model")).to_be_visible()
    try:
        page.get_by_role("button", name="Make house-default the default").click()
        expect(page.locator(f"tr[data-model-id='{model_id}'] .default-model")).to_be_visible()
        # A session that names no model runs on it.
        session_id = api.ok(api.http.post("sessions", json={}), 201)["id"]
        api.post_message(session_id, "hello")
        found = api.wait_type(session_id, "turn.completed")
        (done,) = [e for e in found if e["type"] == "turn.completed"]
        assert done["data"]["final_answer_preview"] == "from the default"
        page.get_by_role("button", name=f"Make {built_in['display_name']} the default").click()
        expect(page.locator(f"tr[data-model-id='{built_in['id']}'] .default-model")).to_be_visible()
        assert not api.ok(api.http.get(f"models/{model_id}"))["settings"].get("default")
    finally:
        settings = api.ok(api.http.get(f"models/{model_id}"))["settings"]
        settings.pop("default", None)
        api.ok(api.http.patch(f"models/{model_id}", json={"settings": settings}))


def test_create_a_harness_and_an_agent_on_it_with_a_client_side_tool(
    page: Page, server: Server, api: Api
) -> None:
    sign_in(page, server, where="#/harnesses/new")
    page.get_by_label("Name", exact=True).fill("support-base")
    page.get_by_label("System prompt").fill("Be kind.")
    page.get_by_role("checkbox", name="Current time current_time").check()
    page.get_by_role("button", name="Create harness").click()
    page.wait_for_url("**/#/harnesses/harness_*")
    harness_id = page.url.rsplit("/", 1)[1]
    harness = api.ok(api.http.get(f"harnesses/{harness_id}"))
    assert harness["system_prompt"] == "Be kind."
    assert [c["ref"] for c in harness["capabilities"]] == ["current_time"]

    page.goto(f"{server.base_url}/#/agents/new")
    page.get_by_label("Name", exact=True).fill("desk")
    page.get_by_label("System prompt").fill("Help.")
    page.get_by_label("Harness").select_option(harness_id)
    page.get_by_label("Client-side tools (a JSON list of tool definitions)").fill(
        json.dumps([LOCATE])
    )
    page.get_by_role("button", name="Create agent").click()
    page.wait_for_url("**/#/agents/agent_*")
    agent_id = page.url.rsplit("/", 1)[1]
    # Saved again as loaded: what the API returned goes back in unchanged.
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#notice")).to_contain_text("Saved agent desk.")
    agent = api.ok(api.http.get(f"agents/{agent_id}"))
    assert agent["harness_id"] == harness_id
    assert [t["name"] for t in agent["tools"]] == ["get_location"]

    page.get_by_role("link", name="Agents", exact=True).click()
    expect(page.locator("table", has_text="Harnesses")).to_contain_text("support-base")
    page.get_by_role("link", name="generic").click()
    expect(page.get_by_text("Built-in: read-only.")).to_be_visible()
    expect(page.get_by_label("System prompt")).to_be_disabled()


def test_cancel_a_running_turn(page: Page, server: Server, api: Api) -> None:
    model_id = api.llmsim_model({"response": {"type": "echo"}, "latency_ms": 60_000})
    session_id = api.create_session(model_id, title="slow")
    sign_in(page, server, where=f"#/sessions/{session_id}")
    expect(page.locator("#stream-state")).to_have_text("live")
    send(page, "take your time")
    cancel = page.get_by_role("button", name="Cancel turn")
    expect(cancel).to_be_visible()
    expect(page.locator(".timeline li[data-type='turn.started']")).to_have_count(1)
    cancel.click()
    expect(page.locator(".timeline li[data-type='turn.cancelled']")).to_have_count(1)
    expect(page.locator("#session-status")).to_have_text("idle")
    expect(cancel).to_be_hidden()
    assert [e["type"] for e in api.events(session_id) if e["type"].startswith("turn.")] == [
        "turn.started",
        "turn.cancelled",
    ]


def test_answer_a_client_side_tool_from_the_form(page: Page, server: Server, api: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "where", "name": "get_location", "arguments": {}}],
    }
    session_id = api.create_session(api.llmsim_model(script), tools=[LOCATE])
    sign_in(page, server, where=f"#/sessions/{session_id}")
    expect(page.locator("#stream-state")).to_have_text("live")
    send(page, "where am I?")
    form = page.locator("form.tool-form")
    expect(form).to_contain_text("get_location")
    expect(page.locator("#session-status")).to_have_text("waitingfortoolresults")
    form.get_by_label("Result (JSON, or plain text)").fill(json.dumps({"city": "Lviv"}))
    form.get_by_role("button", name="Send result").click()
    expect(page.locator(".msg.agent", has_text='get_location: {"city": "Lviv"}')).to_be_visible()
    expect(page.locator("form.tool-form")).to_have_count(0)
    expect(page.locator("#session-status")).to_have_text("idle")


def test_answer_an_ask_user_question_from_the_page(page: Page, server: Server, api: Api) -> None:
    question = {"id": "colour", "question": "Which colour?", "choices": ["red", "blue"]}
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "paint", "name": "ask_user", "arguments": {"questions": [question]}}
        ],
    }
    session_id = api.create_session(api.llmsim_model(script), capabilities=[{"ref": "ask_user"}])
    sign_in(page, server, where=f"#/sessions/{session_id}")
    expect(page.locator("#stream-state")).to_have_text("live")
    send(page, "paint the fence")
    form = page.locator("form.question-form")
    expect(form).to_contain_text("Which colour?")
    form.get_by_label("blue").check()
    form.get_by_role("button", name="Send answers").click()
    expect(page.locator(".msg.agent", has_text="Echo: paint the fence")).to_contain_text("blue")
    expect(page.locator("form.question-form")).to_have_count(0)


def test_approve_and_deny_held_tool_calls_from_the_page(
    page: Page, server: Server, api: Api
) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "time", "name": "get_current_time", "arguments": {}}],
    }
    capabilities = [
        {"ref": "current_time"},
        {"ref": "tool_approval", "config": {"tools": ["get_current_time"]}},
    ]
    session_id = api.create_session(api.llmsim_model(script), capabilities=capabilities)
    sign_in(page, server, where=f"#/sessions/{session_id}")
    expect(page.locator("#stream-state")).to_have_text("live")
    send(page, "what time is it")
    form = page.locator("form.approval-form")
    expect(form).to_contain_text("get_current_time")
    form.get_by_role("button", name="Approve").click()
    expect(page.locator(".msg.agent", has_text="Echo: what time is it")).to_contain_text("timezone")
    expect(page.locator("form.approval-form")).to_have_count(0)

    send(page, "the time again")
    form = page.locator("form.approval-form")
    form.get_by_label("Reason (optional; the model sees it when denied)").fill("not now")
    form.get_by_role("button", name="Deny").click()
    expect(page.locator(".msg.agent", has_text="Echo: the time again")).to_contain_text("not now")


def test_a_parent_and_its_subagent_link_to_each_other(page: Page, server: Server, api: Api) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {
                "when": "delegate",
                "name": "spawn_subagent",
                "arguments": {"name": "researcher", "task": "look it up"},
            }
        ],
    }
    parent = api.create_session(api.llmsim_model(script), capabilities=[{"ref": "subagents"}])
    api.post_message(parent, "delegate this")
    api.wait_type(parent, "turn.completed")
    sign_in(page, server, where=f"#/sessions/{parent}")
    child_link = page.locator(".family a", has_text="researcher")
    expect(child_link).to_be_visible()
    child_link.click()
    expect(page.locator(".family")).to_contain_text("Spawned by")
    expect(page.locator(".msg.user .text")).to_have_text(["look it up"])
    page.locator(".family a").first.click()
    page.wait_for_url(f"**/#/sessions/{parent}")


def test_a_page_opened_while_a_tool_call_waits_shows_its_form(
    page: Page, server: Server, api: Api
) -> None:
    script = {"tool_calls": [{"when": "where", "name": "get_location", "arguments": {}}]}
    session_id = api.create_session(api.llmsim_model(script), tools=[LOCATE])
    api.post_message(session_id, "where?")
    api.wait_type(session_id, "tool.call_requested")
    sign_in(page, server, where=f"#/sessions/{session_id}")
    expect(page.locator("form.tool-form")).to_contain_text("get_location")


def test_the_sessions_list_filters_pins_and_shows_status(
    page: Page, server: Server, api: Api
) -> None:
    tag = f"t{secrets.token_hex(3)}"
    first = api.create_session(api.llmsim_model({}), title=f"alpha {tag}", tags=[tag])
    second = api.create_session(api.llmsim_model({}), title=f"beta {tag}", tags=[tag])
    api.ok(api.http.put(f"sessions/{first}/pin"), 204)
    sign_in(page, server)
    page.get_by_label("Tag").fill(tag)
    page.get_by_role("button", name="Apply").click()
    pinned = page.locator("table", has=page.locator("caption", has_text="Pinned sessions"))
    others = page.locator("table", has=page.locator("caption", has_text=re_exact("Sessions")))
    expect(pinned.locator("tbody tr")).to_have_count(1)
    expect(pinned).to_contain_text(f"alpha {tag}")
    expect(others.locator("tbody tr")).to_have_count(1)
    expect(others).to_contain_text(f"beta {tag}")
    badge = others.locator(f"tr[data-session-id='{second}'] .badge")
    expect(badge).to_have_text("started")
    api.post_message(second, "hello")
    api.wait_type(second, "turn.completed")
    # The status is live: the page learns of the finished turn without a reload.
    expect(badge).to_have_text("idle")


def test_the_files_and_key_values_tabs_show_the_session_storage(
    page: Page, server: Server, api: Api
) -> None:
    session_id = api.create_session(
        api.llmsim_model({}), capabilities=[{"ref": "file_system"}, {"ref": "key_value"}]
    )
    created = api.http.post(f"sessions/{session_id}/fs/notes/plan.md", json={"content": "# Plan"})
    api.ok(created, 201)
    sign_in(page, server, where=f"#/sessions/{session_id}")
    page.get_by_role("tab", name="Files").click()
    page.get_by_role("button", name="notes/").click()
    page.get_by_role("button", name="plan.md").click()
    expect(page.locator("pre.file")).to_have_text("# Plan")
    page.get_by_role("tab", name="Key-values").click()
    expect(page.get_by_role("tabpanel", name="Key-values")).to_contain_text("No keys yet.")
    page.get_by_role("tab", name="Chat").click()
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    # The tabs work from the keyboard: arrows move between them.
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Files")).to_be_focused()
    expect(page.get_by_role("tab", name="Files")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true")


def test_a_long_chat_shows_its_last_messages_and_earlier_ones_on_demand(
    page: Page, server: Server, api: Api
) -> None:
    session_id = api.create_session(api.llmsim_model({"response": {"type": "echo"}}))

    def total() -> int:
        found = api.ok(api.http.get(f"sessions/{session_id}/messages", params={"limit": 1}))
        return int(found["total"])

    for n in range(51):  # 102 messages: one user message and its answer each, in turn
        api.post_message(session_id, f"message {n}")
        wait_for(lambda n=n: total() == 2 * (n + 1), timeout=30, what=f"the answer {n}")
    sign_in(page, server, where=f"#/sessions/{session_id}")
    expect(page.locator(".msg")).to_have_count(100)
    expect(page.locator(".msg.user .text").first).to_have_text("message 1")
    page.get_by_role("button", name="Show earlier messages").click()
    expect(page.locator(".msg")).to_have_count(102)
    expect(page.locator(".msg.user .text").first).to_have_text("message 0")
    expect(page.get_by_role("button", name="Show earlier messages")).to_be_hidden()
    # The timeline holds the last 200 events (deltas hidden) and 200 older ones per click.
    rows = page.locator(".timeline li")
    expect(rows).to_have_count(200)
    first = int(rows.first.get_attribute("data-sequence") or 0)
    page.get_by_role("button", name="Load older events").click()
    expect(rows).to_have_count(400)
    assert int(rows.first.get_attribute("data-sequence") or 0) < first
    sequences = rows.evaluate_all("rows => rows.map(row => Number(row.dataset.sequence))")
    assert sequences == sorted(set(sequences))


def test_the_sessions_list_pages_and_searches(page: Page, server: Server, api: Api) -> None:
    tag = f"p{secrets.token_hex(3)}"
    model_id = api.llmsim_model({})
    for n in range(21):
        api.create_session(model_id, title=f"page {tag} {n:02d}", tags=[tag])
    sign_in(page, server)
    page.get_by_label("Tag").fill(tag)
    page.get_by_role("button", name="Apply").click()
    pager = page.get_by_role("navigation", name="Pages")
    expect(pager).to_contain_text(f"1{DASH}20 of 21")
    rows = page.locator("table", has=page.locator("caption", has_text=re_exact("Sessions")))
    expect(rows.locator("tbody tr")).to_have_count(20)
    pager.get_by_role("button", name="Next").click()
    expect(pager).to_contain_text(f"21{DASH}21 of 21")
    expect(rows.locator("tbody tr")).to_have_count(1)
    expect(rows.locator("tbody tr")).to_contain_text(f"page {tag} 00")
    page.get_by_label("Search").fill(f"page {tag} 07")
    page.get_by_role("button", name="Apply").click()
    expect(pager).to_contain_text(f"1{DASH}1 of 1")


def re_exact(text: str) -> Any:
    import re

    return re.compile(f"^{re.escape(text)}$")


def test_the_stream_resumes_after_a_server_restart_without_duplicates(
    page: Page, server: Server, api: Api
) -> None:
    session_id = api.create_session(api.llmsim_model({"response": {"type": "echo"}}))
    sign_in(page, server, where=f"#/sessions/{session_id}")
    expect(page.locator("#stream-state")).to_have_text("live")
    send(page, "first")
    expect(page.locator(".msg.agent", has_text="Echo: first")).to_be_visible()

    server.kill9()
    expect(page.locator("#stream-state")).to_have_text("reconnecting")
    server.start()
    api.close()  # its connection was to the killed process
    # Posted as soon as the server is back: the page may not have reconnected yet, so it
    # reads these events on resume, after the last sequence it had.
    api.post_message(session_id, "second")
    api.wait_type(session_id, "turn.completed", count=2)
    expect(page.locator(".msg.agent", has_text="Echo: second")).to_be_visible()
    expect(page.locator("#stream-state")).to_have_text("live")

    assert page.locator(".msg.user .text").all_inner_texts() == ["first", "second"]
    assert agent_texts(page) == ["Echo: first", "Echo: second"]
    sequences = page.locator(".timeline li").evaluate_all(
        "rows => rows.map(row => Number(row.dataset.sequence))"
    )
    assert len(sequences) == len(set(sequences)), "an event is shown twice"
    assert sequences == sorted(sequences)
    last = api.events(session_id)[-1]["sequence"]
    wait_for(
        lambda: (
            page.evaluate(
                "() => Math.max(...[...document.querySelectorAll('.timeline li')]"
                ".map(r => Number(r.dataset.sequence)))"
            )
            == last
        ),
        timeout=10,
        what="the timeline to reach the last event",
    )


def test_the_stream_resumes_across_the_servers_stream_cycles(
    page: Page, start_server: Callable[..., Server]
) -> None:
    # The server ends every stream after a second (`disconnecting`); the page reconnects after
    # the last event it had, each time, and shows every event once.
    cycling = start_server(EVERLOOP_SSE_CYCLE_SECONDS="1")
    helper = Api(cycling)
    try:
        script = {"response": {"type": "echo"}, "latency_ms": 700}
        session_id = helper.create_session(helper.llmsim_model(script))
        sign_in(page, cycling, where=f"#/sessions/{session_id}")
        for n in range(3):
            send(page, f"cycle {n}")
            expect(page.locator(".msg.agent", has_text=f"Echo: cycle {n}")).to_be_visible()
            expect(page.locator("#session-status")).to_have_text("idle")
        assert agent_texts(page) == ["Echo: cycle 0", "Echo: cycle 1", "Echo: cycle 2"]
        sequences = page.locator(".timeline li").evaluate_all(
            "rows => rows.map(row => Number(row.dataset.sequence))"
        )
        assert len(sequences) == len(set(sequences)), "an event is shown twice"
        assert page.evaluate("document.querySelectorAll('.msg.user').length") == 3
        assert int(page.locator("#stream-state").get_attribute("data-reconnects") or 0) >= 2
    finally:
        helper.close()


UNLABELLED = """controls => controls
  .filter(c => c.type !== 'hidden' && c.offsetParent !== null)
  .filter(c => !(c.labels && c.labels.length) && !c.getAttribute('aria-label'))
  .map(c => c.outerHTML.slice(0, 120))"""


def test_every_form_control_has_a_label(page: Page, server: Server, api: Api) -> None:
    session_id = api.create_session(api.llmsim_model({}), capabilities=[{"ref": "file_system"}])
    page.goto(f"{server.base_url}/")
    assert page.locator("input, select, textarea").evaluate_all(UNLABELLED) == []
    sign_in(page, server)
    for where, ready in [
        ("#/sessions", "table.list"),
        (f"#/sessions/{session_id}", "#stream-state[data-state=live]"),
        ("#/agents", "table.list"),
        ("#/agents/new", "form.editor"),
        ("#/harnesses/new", "form.editor"),
        ("#/models", "table.list tbody tr"),
    ]:
        page.goto(f"{server.base_url}/{where}")
        expect(page.locator(ready).first).to_be_attached()
        for summary in page.locator("details.card > summary").all():
            summary.click()  # the forms folded away count too
        found = page.locator("input, select, textarea").evaluate_all(UNLABELLED)
        assert found == [], f"{where}: {found}"
