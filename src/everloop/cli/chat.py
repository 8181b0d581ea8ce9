"""``everloop chat``: a conversation with an agent in the terminal, against a running server.

Each message posted starts a turn; the answer streams as it is generated
(``cli.chat_stream``). When the turn waits for the person (a client-side tool's result, an
``ask_user`` question, a tool approval) the chat asks at the prompt and posts the answer.

Ctrl-C while a turn runs cancels it (``POST .../cancel``; the log gets ``turn.cancelled``); a
second Ctrl-C quits. At the prompt, Ctrl-C twice or Ctrl-D quits. Requests that change
something carry an ``Idempotency-Key`` and are retried while the server is unreachable (a
restart), so a message is posted once however often it is sent.

Input: a line ending in ``\\`` continues on the next; a line of ``\"\"\"`` starts and ends a
block. History (readline) is kept in ``~/.everloop_history``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from everloop.cli.agents import agent_id
from everloop.cli.chat_stream import Ended, Follower, Painter, Waiting, call_text
from everloop.cli.client import ApiClient, DataDir, Token, Url, resolve
from everloop.cli.output import NOT_FOUND, fail, print_table

HELP = """commands:
  /help            this list
  /new             start a new session (same agent and model)
  /usage           tokens used by this session
  /events [N]      the session's last N events (default 15)
  /session         this session's id
  /quit            leave (also Ctrl-D, or Ctrl-C twice at the prompt)
input: end a line with \\ to go on, or put \"\"\" on a line to start and end a block.
Ctrl-C while the agent works cancels the turn; a second Ctrl-C quits."""

RETRY_SECONDS = 120.0
HISTORY = Path.home() / ".everloop_history"


class Quit(Exception):
    """Leave the chat."""


def chat(
    agent: Annotated[
        str | None, typer.Option("--agent", help="Chat with this agent (name or id).")
    ] = None,
    session: Annotated[
        str | None, typer.Option("--session", help="Go on with this session instead.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model id or name for a new session.")
    ] = None,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Chat with an agent: streamed answers, tools, Ctrl-C cancels.

    A new session of --agent on --model, or --session ID to go on with one.

    In the chat, /help lists its commands."""
    with ApiClient(resolve(url, token, data_dir)) as api:
        api.health("/healthz")  # no server: say so now (later, requests wait for a restart)
        room = ChatRoom(api)
        if session is not None:
            room.attach(session)
        else:
            room.open(agent, model)
        room.run()


class ChatRoom:
    """One terminal conversation: the prompt loop, the current session, its follower."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.painter = Painter(sys.stdout)
        self.agent_id: str | None = None
        self.model_id: str | None = None
        self.follower = Follower(api, "", self.painter)

    # -- sessions ----------------------------------------------------------------------------

    def open(self, agent: str | None, model: str | None) -> None:
        if agent is not None:
            self.agent_id = agent_id(self.api, agent)
        if model is not None:
            self.model_id = self._model_id(model)
        self._new_session()

    def _model_id(self, model: str) -> str:
        models = self.api.get("models")["data"]
        for found in models:
            if model in (found["id"], found["model_id"], found.get("display_name")):
                return str(found["id"])
        fail(f"no model {model!r}: `everloop models ls` lists them", NOT_FOUND)

    def _new_session(self) -> None:
        wanted = {"agent_id": self.agent_id, "model_id": self.model_id}
        body: dict[str, Any] = {key: value for key, value in wanted.items() if value}
        body["hints"] = {"ask_user": True}  # a person is here to answer the agent's questions
        created = self._post("sessions", body)
        self.follower = Follower(self.api, created["id"], self.painter)
        self.painter.line(f"session {created['id']}  (/help for commands)")

    def attach(self, session_id: str) -> None:
        found = self.api.get(f"sessions/{session_id}")
        self.agent_id, self.model_id = found.get("agent_id"), found.get("model_id")
        last = self.api.get(f"sessions/{session_id}/events", limit=1)["data"]
        self.follower = Follower(self.api, found["id"], self.painter)
        self.follower.last_sequence = int(last[0]["sequence"]) if last else 0
        self.painter.line(
            f"session {found['id']}  ({found['status']}, {self.follower.last_sequence} events;"
            " /help for commands)"
        )
        if found["status"] == "waitingfortoolresults":
            # Show the last request again, so that it is answered here.
            asked = self.api.get(
                f"sessions/{session_id}/events",
                types=["tool.call_requested", "tool.approval_requested"],
                limit=1,
            )["data"]
            if asked:
                self.follower.last_sequence = int(asked[0]["sequence"]) - 1
        if found["status"] in ("active", "waitingfortoolresults"):
            self._follow(None)

    @property
    def session_id(self) -> str:
        return self.follower.session_id

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        _history()
        interrupted = False
        while True:
            try:
                text = self._read()
                interrupted = False
            except KeyboardInterrupt:
                if interrupted:
                    break
                interrupted = True
                self.painter.line("\n(Ctrl-C again, Ctrl-D or /quit to leave)")
                continue
            except EOFError:
                self.painter.end_line()
                break
            try:
                if text.startswith("/"):
                    self._command(text)
                elif text.strip():
                    self._send(text)
            except Quit:
                break
            except KeyboardInterrupt:  # a Ctrl-C after a cancel: quit
                self.painter.line("[quit]")
                break
            except typer.Exit as exc:  # an error, already printed: the chat goes on
                if exc.exit_code == 4:
                    raise
        _save_history()

    def _read(self) -> str:
        # Piped input (a script) gets no prompts in its output.
        you, more = ("you> ", "... ") if sys.stdin.isatty() else ("", "")
        first = input(you)
        if first.strip() == '"""':
            lines: list[str] = []
            while (line := input(more)).strip() != '"""':
                lines.append(line)
            return "\n".join(lines)
        lines = [first]
        while lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1]
            lines.append(input(more))
        return "\n".join(lines)

    def _command(self, text: str) -> None:
        name, _, rest = text.strip().partition(" ")
        if name in ("/quit", "/exit", "/q"):
            raise Quit
        if name == "/help":
            self.painter.line(HELP, dim=False)
        elif name == "/new":
            self._new_session()
        elif name == "/session":
            self.painter.line(self.session_id, dim=False)
        elif name == "/usage":
            self._usage()
        elif name == "/events":
            self._events(int(rest) if rest.strip().isdigit() else 15)
        else:
            self.painter.line(f"unknown command {name}: /help lists them", dim=False)

    def _usage(self) -> None:
        found = self.api.get(f"sessions/{self.session_id}")
        usage = found.get("usage") or {}
        self.painter.line(
            f"tokens: {usage.get('input_tokens', 0)} in, {usage.get('output_tokens', 0)} out, "
            f"{usage.get('cache_read_tokens', 0)} cache read; session {found['status']}",
            dim=False,
        )

    def _events(self, count: int) -> None:
        from everloop.cli.sessions import summary

        found = self.api.get(
            f"sessions/{self.session_id}/events",
            limit=max(1, min(count, 1000)),
            exclude=["output.message.delta", "reason.thinking.delta"],
        )["data"]
        print_table(
            ((e["sequence"], e["ts"][11:19], e["type"], summary(e)) for e in found),
            ("seq", "time", "type", "about"),
        )

    # -- a turn ------------------------------------------------------------------------------

    def _send(self, text: str) -> None:
        body = {"message": {"role": "user", "content": [{"type": "text", "text": text}]}}
        posted = self._post(f"sessions/{self.session_id}/messages", body)
        self._follow(posted.get("turn_id"))

    def _follow(self, turn_id: str | None) -> None:
        cancelling = False
        while True:
            try:
                outcome = self.follower.follow(turn_id)
                if isinstance(outcome, Ended):
                    return
                self._answer(outcome)
            except KeyboardInterrupt:
                if cancelling:
                    raise
                cancelling = True
                cancelled = self._post(f"sessions/{self.session_id}/cancel", None)
                if cancelled and cancelled.get("status") == "cancelled":
                    self.painter.line("[cancelling the turn: Ctrl-C again to quit]")
                else:
                    self.painter.line("[nothing to cancel: the turn had ended]")
            except ConnectionError as exc:
                fail(f"{exc}: is the server still running? (`everloop status`)")

    def _answer(self, waiting: Waiting) -> None:
        data = waiting.data
        if waiting.kind == "ask_user":
            self._ask_user(data)
        elif waiting.kind == "approval":
            decisions = []
            for call in data.get("tool_calls", []):
                reply = input(f"  approve {call_text(call['name'], call.get('arguments'))}? [y/N] ")
                approved = reply.strip().lower() in ("y", "yes")
                decisions.append({"tool_call_id": call["id"], "approved": approved})
            self._post(f"sessions/{self.session_id}/tool-approvals", {"decisions": decisions})
        else:
            results = [self._tool_result(call) for call in data.get("tool_calls", [])]
            self._post(f"sessions/{self.session_id}/tool-results", {"tool_results": results})

    def _tool_result(self, call: dict[str, Any]) -> dict[str, Any]:
        self.painter.line(f"  ? client-side tool {call_text(call['name'], call.get('arguments'))}")
        self.painter.line("    type its result, JSON or text (an empty line declines)")
        reply = input("  result> ").strip()
        if not reply:
            return {"tool_call_id": call["id"], "error": "the user declined to run the tool"}
        try:
            result: Any = json.loads(reply)
        except ValueError:
            result = reply
        return {"tool_call_id": call["id"], "result": result}

    def _ask_user(self, data: dict[str, Any]) -> None:
        call_id = data["tool_calls"][0]["id"]
        answers = []
        for question in data.get("questions", []):
            self.painter.line(f"  ? {question['question']}", dim=False)
            choices = question.get("choices") or []
            for n, choice in enumerate(choices, 1):
                self.painter.line(f"    {n}. {choice}", dim=False)
            reply = input("  answer> ").strip()
            answer: str | list[str] = _choice(reply, choices)
            if question.get("multiple"):
                answer = [_choice(part.strip(), choices) for part in reply.split(",")]
            answers.append({"question_id": question["id"], "answer": answer})
        body = {"tool_call_id": call_id, "answers": answers}
        self._post(f"sessions/{self.session_id}/question-answers", body)

    def _post(self, path: str, body: Any) -> Any:
        """POST with an Idempotency-Key, again while the server is unreachable (a restart)."""
        import httpx

        key = uuid.uuid4().hex
        deadline = time.monotonic() + RETRY_SECONDS
        told = False
        while True:
            try:
                response = self.api.attempt(
                    "POST", path, json=body, headers={"Idempotency-Key": key}
                )
                return response.json() if response.content else None
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    fail(self.api.no_server())
                if not told:
                    self.painter.line("[server unreachable: retrying…]")
                    told = True
                time.sleep(0.25)


def _choice(reply: str, choices: list[str]) -> str:
    """A number picks that choice; anything else is the answer as typed."""
    if reply.isdigit() and 1 <= int(reply) <= len(choices):
        return choices[int(reply) - 1]
    return reply


def _history() -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - no readline on this platform
        return
    with contextlib.suppress(OSError):
        readline.read_history_file(HISTORY)
    readline.set_history_length(1000)


def _save_history() -> None:
    try:
        import readline

        readline.write_history_file(HISTORY)
    except (ImportError, OSError):
        pass
