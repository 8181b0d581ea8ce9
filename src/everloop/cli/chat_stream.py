"""Following one turn of a chat over server-sent events, across dropped connections.

The stream is opened with ``after_sequence`` = the highest event sequence already shown, and
every event whose sequence is not above it is skipped: after a dropped connection or a server
restart the stream is opened again from there, so no text is lost and none is printed twice.
The server stores the text deltas as events, so the resumed stream replays the ones missed.

The follower prints as events arrive: the answer's text deltas as they stream, one compact
line per finished tool call (name, short arguments, ok or error, duration), and how the turn
ended. It returns when the turn ends, or when the turn waits for the person at the terminal (a
client-side tool's result, an ``ask_user`` answer, an approval): the chat asks, then follows on.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from everloop.cli.client import ApiClient, sse_events
from everloop.cli.output import clip

TURN_ENDS = ("turn.completed", "turn.failed", "turn.cancelled")
RECONNECT_SECONDS = 120.0
SSE_READ_TIMEOUT = 90.0  # above the server's keep-alive interval (30 s by default)


@dataclass
class Waiting:
    """The turn waits for the person: ``kind`` is ``tools``, ``ask_user`` or ``approval``."""

    kind: str
    data: dict[str, Any]


@dataclass
class Ended:
    """The turn ended: ``turn.completed``, ``turn.failed`` or ``turn.cancelled``."""

    kind: str
    data: dict[str, Any]


class Painter:
    """Writes the stream to the terminal; dim lines for tools when stdout is a colour tty."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.colour = out.isatty() and "NO_COLOR" not in os.environ
        self.at_line_start = True

    def text(self, chunk: str) -> None:
        if chunk:
            self.out.write(chunk)
            self.out.flush()
            self.at_line_start = chunk.endswith("\n")

    def line(self, text: str, *, dim: bool = True) -> None:
        """A line of its own (after a newline if text was mid-line)."""
        self.end_line()
        if dim and self.colour:
            text = f"\x1b[2m{text}\x1b[0m"
        self.out.write(text + "\n")
        self.out.flush()
        self.at_line_start = True

    def end_line(self) -> None:
        if not self.at_line_start:
            self.out.write("\n")
            self.at_line_start = True


def call_text(name: str, arguments: Any) -> str:
    """``name(args)`` with the arguments as short JSON."""
    shown = "" if arguments in ({}, None) else json.dumps(arguments, ensure_ascii=False)
    return f"{name}({clip(shown, 50) if shown else ''})"


@dataclass
class Follower:
    """Follows a session's events from ``last_sequence`` on, printing them."""

    api: ApiClient
    session_id: str
    painter: Painter
    last_sequence: int = 0
    shown: dict[str, str] = field(default_factory=dict)  # message id: its text on the screen
    started: dict[str, tuple[str, Any]] = field(default_factory=dict)
    dropped: bool = False

    def follow(self, turn_id: str | None) -> Ended | Waiting:
        """Print the turn's events until it ends or waits; reconnect when the stream drops.

        ``KeyboardInterrupt`` passes through (the chat cancels the turn and follows again)."""
        import httpx

        lost_since: float | None = None
        while True:
            try:
                outcome = self._stream(turn_id)
            except (httpx.TransportError, ValueError) as exc:
                # ValueError: a frame cut mid-JSON by the drop.
                now = time.monotonic()
                if lost_since is None or not self.dropped:  # a first drop since connected
                    lost_since, self.dropped = now, True
                    self.painter.line(f"[connection lost ({type(exc).__name__}): reconnecting…]")
                elif now - lost_since > RECONNECT_SECONDS:
                    raise ConnectionError(
                        f"no answer from {self.api.target.url} for {RECONNECT_SECONDS:.0f} s"
                    ) from exc
                time.sleep(0.25)
                continue
            if outcome is None:  # the server closed the stream (``disconnecting``): again
                continue
            return outcome

    def _stream(self, turn_id: str | None) -> Ended | Waiting | None:
        import httpx

        params = {"after_sequence": self.last_sequence}
        timeout = httpx.Timeout(10.0, read=SSE_READ_TIMEOUT)
        with self.api.http.stream(
            "GET", f"sessions/{self.session_id}/sse", params=params, timeout=timeout
        ) as response:
            if response.status_code >= 500:  # a server starting or stopping: try again
                raise httpx.RemoteProtocolError(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                response.read()
                self.api.check(response)
            for kind, data in sse_events(response.iter_lines()):
                if kind == "connected":
                    if self.dropped:
                        self.painter.line("[reconnected: resuming]")
                        self.dropped = False
                    continue
                if kind == "disconnecting":
                    return None
                if not isinstance(data, dict) or "sequence" not in data:
                    continue
                outcome = self._event(data, turn_id)
                if outcome is not None:
                    return outcome
        raise httpx.RemoteProtocolError("the event stream ended")

    def _event(self, event: dict[str, Any], turn_id: str | None) -> Ended | Waiting | None:
        sequence = int(event["sequence"])
        if sequence <= self.last_sequence:
            return None  # already shown (a resumed stream starts after it; belt and braces)
        self.last_sequence = sequence
        kind, data = event["type"], event.get("data") or {}
        ours = turn_id is None or (event.get("context") or {}).get("turn_id") == turn_id
        if kind == "output.message.delta":
            message_id = str(data.get("message_id"))
            shown = self.shown.get(message_id, "")
            accumulated = data.get("accumulated")
            if not isinstance(accumulated, str):
                accumulated = shown + str(data.get("delta", ""))
            self._show(message_id, accumulated)
        elif kind == "output.message.completed":
            message = data.get("message") or {}
            parts = message.get("content", [])
            text = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
            self._show(str(message.get("id")), text)
            self.painter.end_line()
        elif kind == "tool.started":
            call = data.get("tool_call") or {}
            self.started[str(call.get("id"))] = (str(call.get("name")), call.get("arguments"))
        elif kind == "tool.completed":
            self._tool_completed(data)
        elif kind == "tool.call_requested":
            for call in data.get("tool_calls", []):
                self.started[str(call.get("id"))] = (str(call.get("name")), call.get("arguments"))
            return Waiting("ask_user" if data.get("kind") == "ask_user" else "tools", data)
        elif kind == "tool.approval_requested":
            return Waiting("approval", data)
        elif kind in TURN_ENDS and ours:
            self._turn_ended(kind, data)
            return Ended(kind, data)
        return None

    def _show(self, message_id: str, text: str) -> None:
        """Print what of ``text`` is not on the screen yet.

        A model call re-run after a server crash streams its answer again from the start (same
        message id, new events): what was shown already is not printed twice."""
        shown = self.shown.get(message_id, "")
        if text.startswith(shown):
            self.painter.text(text[len(shown) :])
            self.shown[message_id] = text
        elif not shown.startswith(text):  # a different answer this time: say so, show it all
            self.painter.line("[the answer restarted]")
            self.painter.text(text)
            self.shown[message_id] = text

    def _tool_completed(self, data: dict[str, Any]) -> None:
        call_id = str(data.get("tool_call_id"))
        name, arguments = self.started.pop(call_id, (str(data.get("tool_name")), None))
        duration = data.get("duration_ms")
        took = f" {duration} ms" if duration is not None else ""
        if data.get("success"):
            self.painter.line(f"  ↳ {call_text(name, arguments)} ok{took}")
        else:
            error = clip(data.get("error") or data.get("status") or "failed", 60)
            self.painter.line(f"  ↳ {call_text(name, arguments)} error: {error}{took}")

    def _turn_ended(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "turn.cancelled":
            self.painter.line("[turn cancelled]")
        elif kind == "turn.failed":
            error = data.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            self.painter.line(f"[turn failed: {clip(message or 'unknown error', 100)}]", dim=False)
        else:
            self.painter.end_line()
