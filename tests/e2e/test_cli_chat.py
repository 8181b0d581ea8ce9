"""``everloop chat`` in a pseudo-terminal (pexpect) against one real ``everloop serve``.

A person's keystrokes go in (lines, Ctrl-C); what the terminal shows comes out; what happened
is read back from the session's events through the API: the answer streams while the turn
runs, a tool call shows as one line, Ctrl-C cancels a slow turn (``turn.cancelled``) and a
second quits, a client-side tool, an ``ask_user`` question and an approval are answered at the
prompt (also when the chat attaches to a session already waiting), and a server killed
mid-answer and started again leaves the answer whole on the screen, no text twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pexpect
import pytest

from tests.e2e.cli_support import cli_env, module_server
from tests.e2e.conftest import Api, Server, everloop_command, wait_for

pytestmark = pytest.mark.slow

LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt "
    "ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation "
    "ullamco laboris nisi ut aliquip ex ea commodo consequat. "
)
ANSWER = (LOREM * 2)[:240]  # llmsim's lorem of 60 tokens: 240 characters


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with module_server(tmp_path_factory.mktemp("chat")) as started:
        yield started


@pytest.fixture
def api(server: Server) -> Iterator[Api]:
    helper = Api(server)
    try:
        yield helper
    finally:
        helper.close()


class Terminal:
    """``everloop chat`` in a pty; ``screen`` is everything it printed (CRLF as LF)."""

    def __init__(self, server: Server, *args: str) -> None:
        self.child = pexpect.spawn(
            everloop_command()[0],
            ["chat", *args],
            env=cli_env(server, COLUMNS="120"),
            encoding="utf-8",
            timeout=60,
            dimensions=(40, 120),
        )
        self.seen: list[str] = []

    def expect(self, text: str) -> None:
        self.child.expect_exact(text)
        self.seen.append(str(self.child.before) + str(self.child.after))

    def prompt(self) -> None:
        self.expect("you> ")

    def say(self, text: str) -> None:
        self.child.sendline(text)

    @property
    def screen(self) -> str:
        return "".join(self.seen).replace("\r\n", "\n")

    def session_id(self) -> str:
        return self.screen.split("session ", 1)[1].split()[0]

    def quit(self) -> int:
        self.child.expect(pexpect.EOF)
        self.seen.append(str(self.child.before))
        self.child.close()
        return int(self.child.exitstatus or 0)

    def close(self) -> None:
        if self.child.isalive():
            self.child.close(force=True)
        else:
            self.child.close()


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    try:
        yield opened
    finally:
        for terminal in opened:
            terminal.close()


def model(api: Api, script: dict[str, Any]) -> str:
    """A model under the llmsim provider; its name (``everloop chat --model`` takes it)."""
    name = f"sim-{secrets.token_hex(3)}"
    api.llmsim_model(script, name=name)
    return name


def slow_lorem(api: Api) -> str:
    # 240 characters in 60 deltas, 60 ms apart: the answer takes about 3.5 s to stream.
    script = {"response": {"type": "lorem", "tokens": 60}, "chunk_chars": 4, "chunk_delay_ms": 60}
    return model(api, script)


def test_an_answer_streams_while_the_turn_runs(
    server: Server, api: Api, terminals: list[Terminal]
) -> None:
    chat = Terminal(server, "--model", slow_lorem(api))
    terminals.append(chat)
    chat.prompt()
    chat.say("tell me something")
    chat.expect("Lorem ipsum")
    session_id = chat.session_id()
    # The first words are on the screen and the turn is still running: streamed, not at the end.
    assert "turn.completed" not in [e["type"] for e in api.events(session_id)]
    chat.prompt()
    assert chat.screen.count(ANSWER) == 1
    events = api.events(session_id)
    assert sum(e["type"] == "output.message.delta" for e in events) > 1
    chat.say("/quit")
    assert chat.quit() == 0


def test_a_tool_call_shows_and_slash_commands_answer(
    server: Server, api: Api, terminals: list[Terminal]
) -> None:
    chat = Terminal(server)
    terminals.append(chat)
    chat.prompt()
    chat.say("what time is it?")
    chat.expect("get_current_time() ok")
    chat.expect("Echo: what time is it?")
    chat.prompt()
    chat.say("/usage")
    chat.expect("tokens: ")
    chat.prompt()
    chat.say("/events 30")
    chat.expect("tool.completed")
    chat.prompt()
    first = chat.session_id()
    chat.say("/new")
    chat.expect("session session_")
    chat.prompt()
    chat.say("/session")
    chat.prompt()
    assert chat.screen.rsplit("/session", 1)[1].split()[0] != first
    chat.say("/help")
    chat.expect("/events [N]")
    chat.prompt()
    chat.say("first line \\")
    chat.expect("... ")
    chat.say("second line")
    chat.expect("Echo: first line \nsecond line".replace("\n", "\r\n"))
    chat.prompt()
    chat.child.sendeof()
    assert chat.quit() == 0
    history = (server.data_dir.parent / ".everloop_history").read_text()
    assert "what time is it?" in history and "/usage" in history


def test_chat_goes_on_with_a_session_and_follows_its_running_turn(
    server: Server, api: Api, terminals: list[Terminal]
) -> None:
    model_id = api.llmsim_model(
        {"response": {"type": "lorem", "tokens": 60}, "chunk_chars": 4, "chunk_delay_ms": 60}
    )
    session_id = api.create_session(model_id)
    api.post_message(session_id, "started elsewhere")
    api.wait_type(session_id, "output.message.delta")
    chat = Terminal(server, "--session", session_id)
    terminals.append(chat)
    chat.expect(f"session {session_id}")
    chat.expect("consequat.")  # the rest of the running answer streams here
    chat.prompt()
    assert "turn.completed" in [e["type"] for e in api.events(session_id)]
    chat.say("/quit")
    assert chat.quit() == 0


def test_ctrl_c_cancels_a_slow_turn_and_a_second_quits(
    server: Server, api: Api, terminals: list[Terminal]
) -> None:
    chat = Terminal(server, "--model", model(api, {"latency_ms": 60_000}))
    terminals.append(chat)
    chat.prompt()
    session_id = chat.session_id()
    chat.say("take your time")
    wait_for(
        lambda: api.ok(api.http.get(f"sessions/{session_id}"))["status"] == "active",
        timeout=30,
        what="the turn to run",
    )
    chat.child.sendintr()
    chat.expect("[turn cancelled]")
    chat.prompt()
    kinds = [e["type"] for e in api.events(session_id)]
    assert "turn.cancelled" in kinds and "turn.completed" not in kinds

    chat.say("and again")
    wait_for(
        lambda: api.ok(api.http.get(f"sessions/{session_id}"))["status"] == "active",
        timeout=30,
        what="the second turn to run",
    )
    chat.child.sendintr()
    chat.expect("Ctrl-C again to quit")
    chat.child.sendintr()
    assert chat.quit() == 0
    api.wait_type(session_id, "turn.cancelled", count=2)


def test_a_client_side_tool_is_answered_at_the_prompt(
    server: Server, api: Api, terminals: list[Terminal]
) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "where", "name": "get_location", "arguments": {"precise": True}}],
    }
    model_id = api.llmsim_model(script)
    locate = {
        "type": "client_side",
        "name": "get_location",
        "description": "Where the user is.",
        "parameters": {"type": "object", "properties": {"precise": {"type": "boolean"}}},
    }
    body = {
        "name": f"locator-{secrets.token_hex(3)}",
        "system_prompt": "Find the user.",
        "default_model_id": model_id,
        "tools": [locate],
    }
    agent = api.ok(api.http.post("agents", json=body), 201)
    chat = Terminal(server, "--agent", agent["name"])
    terminals.append(chat)
    chat.prompt()
    chat.say("where am I?")
    chat.expect('client-side tool get_location({"precise": true})')
    chat.expect("result> ")
    chat.say('{"city": "Lviv"}')
    chat.expect('get_location({"precise": true}) ok')
    chat.expect('get_location: {"city": "Lviv"}')
    chat.prompt()
    session_id = chat.session_id()
    [done] = [e for e in api.events(session_id) if e["type"] == "tool.completed"]
    assert done["data"]["success"] is True
    chat.say("/quit")
    assert chat.quit() == 0


def test_a_server_restart_mid_answer_resumes_without_repeating_text(
    server: Server, api: Api, terminals: list[Terminal]
) -> None:
    chat = Terminal(server, "--model", slow_lorem(api))
    terminals.append(chat)
    chat.prompt()
    chat.say("tell me something long")
    chat.expect("Lorem ipsum")
    server.kill9()
    chat.expect("reconnecting")
    server.start()
    chat.expect("[reconnected: resuming]")
    chat.prompt()
    shown = chat.screen.split("tell me something long", 1)[1]
    # The answer, whole: before the drop, then the rest; no word of it twice.
    text = "".join(line for line in shown.splitlines() if not line.startswith("["))
    assert text.replace("you> ", "") == ANSWER
    session_id = chat.session_id()
    kinds = [e["type"] for e in api.events(session_id)]
    assert kinds.count("turn.completed") == 1
    chat.say("/quit")
    assert chat.quit() == 0


def test_questions_and_approvals_are_answered_at_the_prompt(
    server: Server, api: Api, terminals: list[Terminal]
) -> None:
    ask = {"questions": [{"id": "colour", "question": "Which colour?", "choices": ["red", "teal"]}]}
    model_id = api.llmsim_model(
        {
            "response": {"type": "echo"},
            "tool_calls": [
                {"when": "plan", "name": "ask_user", "arguments": ask},
                {"when": "save", "name": "kv_set", "arguments": {"key": "k", "value": "v"}},
            ],
        }
    )
    body = {
        "name": f"careful-{secrets.token_hex(3)}",
        "system_prompt": "You ask before you act.",
        "default_model_id": model_id,
        "capabilities": [
            {"ref": "ask_user"},
            {"ref": "key_value"},
            {"ref": "tool_approval", "config": {"tools": ["kv_set"]}},
        ],
    }
    agent = api.ok(api.http.post("agents", json=body), 201)
    chat = Terminal(server, "--agent", agent["id"])
    terminals.append(chat)
    chat.prompt()
    chat.say("plan the colour")
    chat.expect("? Which colour?")
    chat.expect("2. teal")
    chat.expect("answer> ")
    chat.say("2")
    chat.expect("teal")
    chat.prompt()
    chat.say("save it")
    chat.expect('approve kv_set({"key": "k", "value": "v"})? [y/N] ')
    chat.say("y")
    chat.expect('kv_set({"key": "k", "value": "v"}) ok')
    chat.prompt()
    session_id = chat.session_id()
    kinds = [e["type"] for e in api.events(session_id)]
    assert "tool.questions_answered" in kinds and "tool.approval_decided" in kinds
    chat.say("/quit")
    assert chat.quit() == 0


def test_a_session_waiting_for_a_client_tool_is_answered_when_the_chat_attaches(
    server: Server, api: Api, terminals: list[Terminal]
) -> None:
    script = {
        "response": {"type": "echo"},
        "tool_calls": [{"when": "where", "name": "get_location", "arguments": {}}],
    }
    locate = {
        "type": "client_side",
        "name": "get_location",
        "description": "Where the user is.",
        "parameters": {"type": "object", "properties": {}},
    }
    session_id = api.create_session(api.llmsim_model(script), tools=[locate])
    api.post_message(session_id, "where am I?")
    api.wait_type(session_id, "tool.call_requested")
    chat = Terminal(server, "--session", session_id)
    terminals.append(chat)
    chat.expect("client-side tool get_location()")
    chat.expect("result> ")
    chat.say("Kyiv")
    chat.expect('get_location: "Kyiv"')
    chat.prompt()
    chat.say("/quit")
    assert chat.quit() == 0
