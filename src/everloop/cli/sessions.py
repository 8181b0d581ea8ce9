"""``everloop sessions ls|show|events|cancel|delete|export``: sessions over the HTTP API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from everloop.cli.client import ApiClient, DataDir, Token, Url, resolve
from everloop.cli.output import Json, clip, print_fields, print_json, print_table, progress, short

sessions_app = typer.Typer(
    help="List, inspect, cancel, delete and export sessions on a running server.",
    no_args_is_help=True,
)

SessionId = Annotated[str, typer.Argument(metavar="SESSION_ID", help="The session's id.")]


def summary(event: dict[str, Any]) -> str:
    """One line saying what an event is about (its text, tool, outcome)."""
    kind, data = event["type"], event.get("data") or {}
    if kind == "input.message":
        return clip(_text(data.get("message", {})), 80)
    if kind == "output.message.delta":
        return clip(data.get("delta", ""), 80)
    if kind == "output.message.completed":
        message = data.get("message", {})
        calls = [p["name"] for p in message.get("content", []) if p.get("type") == "tool_call"]
        return clip(_text(message) or ("calls " + ", ".join(calls) if calls else ""), 80)
    if kind == "tool.started":
        call = data.get("tool_call", {})
        return clip(f"{call.get('name')}({json.dumps(call.get('arguments', {}))})", 80)
    if kind == "tool.completed":
        outcome = "ok" if data.get("success") else f"error: {data.get('error')}"
        return clip(f"{data.get('tool_name')} {outcome} ({data.get('duration_ms')} ms)", 80)
    if kind == "tool.call_requested":
        return clip(", ".join(c.get("name", "") for c in data.get("tool_calls", [])), 80)
    if kind in ("turn.completed", "turn.failed", "turn.cancelled"):
        usage = data.get("usage") or {}
        tokens = f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out"
        return clip(data.get("error") or data.get("reason") or tokens, 80)
    return ""


def _text(message: dict[str, Any]) -> str:
    parts = message.get("content", [])
    return " ".join(p.get("text", "") for p in parts if p.get("type") == "text")


def _tokens(session: dict[str, Any]) -> str:
    usage = session.get("usage") or {}
    return f"{usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)}"


@sessions_app.command("ls")
def sessions_ls(
    agent: Annotated[str | None, typer.Option(help="Only this agent's sessions (its id).")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only sessions in this status (idle, active, ...).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="At most this many.")] = 20,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """List sessions, newest first."""
    params = {k: v for k, v in {"agent_id": agent, "status": status}.items() if v}
    with ApiClient(resolve(url, token, data_dir)) as api:
        page = api.get("sessions", limit=limit, **params)
    if json_out:
        print_json(page["data"])
        return
    print_table(
        (
            (
                s["id"],
                s["status"],
                short(s.get("updated_at")),
                _tokens(s),
                s.get("agent_id") or "",
                clip(s.get("title") or s.get("preview") or "", 40),
            )
            for s in page["data"]
        ),
        ("id", "status", "updated", "tokens in/out", "agent", "title"),
    )
    if page["total"] > len(page["data"]):
        typer.echo(f"({len(page['data'])} of {page['total']}: --limit for more)", err=True)


@sessions_app.command("show")
def sessions_show(
    session_id: SessionId,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Show one session: status, agent, model, usage, previews."""
    with ApiClient(resolve(url, token, data_dir)) as api:
        session = api.get(f"sessions/{session_id}")
    if json_out:
        print_json(session)
        return
    print_fields(
        [
            ("id", session["id"]),
            ("status", session["status"]),
            ("title", session.get("title")),
            ("agent", session.get("agent_id")),
            ("model", session.get("model_id")),
            ("created", short(session.get("created_at"))),
            ("updated", short(session.get("updated_at"))),
            ("tokens in/out", _tokens(session)),
            ("last input", clip(session.get("preview") or "", 70)),
            ("last output", clip(session.get("output_preview") or "", 70)),
        ]
    )


@sessions_app.command("events")
def sessions_events(
    session_id: SessionId,
    types: Annotated[
        list[str] | None, typer.Option("--type", help="Only events of this type (repeatable).")
    ] = None,
    after: Annotated[int, typer.Option(min=0, help="Only events after this sequence.")] = 0,
    deltas: Annotated[bool, typer.Option(help="Include the streaming delta events.")] = False,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """List a session's events, oldest first (deltas left out unless --deltas)."""
    params: dict[str, Any] = {"types": types} if types else {}
    if not deltas and not types:
        params["exclude"] = ["output.message.delta", "reason.thinking.delta"]
    with ApiClient(resolve(url, token, data_dir)) as api:
        found = list(api.events(session_id, after=after, **params))
    if json_out:
        print_json(found)
        return
    print_table(
        ((e["sequence"], short(e["ts"])[11:], e["type"], summary(e)) for e in found),
        ("seq", "time", "type", "about"),
    )


@sessions_app.command("cancel")
def sessions_cancel(
    session_id: SessionId,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Cancel the session's running turn (nothing to do when none runs)."""
    with ApiClient(resolve(url, token, data_dir)) as api:
        result = api.post(f"sessions/{session_id}/cancel")
    if json_out:
        print_json(result)
    elif result["status"] == "cancelled":
        typer.echo(f"cancelled {result['turn_id']}")
    else:
        typer.echo("no turn was running")


@sessions_app.command("delete")
def sessions_delete(
    session_id: SessionId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Delete a session and everything in it."""
    if not yes and sys.stdin.isatty():
        typer.confirm(f"delete {session_id} and its messages and events?", abort=True)
    with ApiClient(resolve(url, token, data_dir)) as api:
        api.delete(f"sessions/{session_id}")
    typer.echo(f"deleted {session_id}")


@sessions_app.command("export")
def sessions_export(
    session_id: SessionId,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Export a session as JSON: the session, its messages and every event."""
    with ApiClient(resolve(url, token, data_dir)) as api:
        session = api.get(f"sessions/{session_id}")
        messages = api.get(f"sessions/{session_id}/messages")["data"]
        last = api.get(f"sessions/{session_id}/events", limit=1)["data"]
        events: list[dict[str, Any]] = []
        with progress("exporting events", last[0]["sequence"] if last else 0) as advance:
            for event in api.events(session_id):
                events.append(event)
                advance(1)
    document = json.dumps(
        {"session": session, "messages": messages, "events": events}, indent=2, ensure_ascii=False
    )
    if output is None:
        sys.stdout.write(document + "\n")
    else:
        output.write_text(document + "\n")
        typer.echo(f"wrote {output}: {len(messages)} messages, {len(events)} events", err=True)
