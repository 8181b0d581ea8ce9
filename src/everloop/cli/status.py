"""``everloop status``: is the server up and ready, which version, its executors, running turns.

It reads what the server already publishes: ``/healthz`` (the process answers), ``/readyz`` (the
app database and the engine's system database answer), the OpenAPI document's version, the
durable engine's executors (operators only; others see none) and the sessions' status counts.
Exit 0 when ready, 1 when the server answers but is not ready.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from everloop.cli.client import ApiClient, DataDir, Token, Url, resolve
from everloop.cli.output import ERROR, Json, print_fields, print_json, print_table, short


def status(
    wait: Annotated[
        float,
        typer.Option(min=0, help="Wait up to this many seconds for the server to be ready."),
    ] = 0,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Server health, version, database, executors, running turns.

    Exit 0 when the server is ready, 1 when it is not (or not there)."""
    with ApiClient(resolve(url, token, data_dir), timeout=10.0) as api:
        if wait:
            _wait_ready(api, wait)
        health = api.health("/healthz")
        ready_response = api.health("/readyz")
        ready: dict[str, Any] = _json_or_empty(ready_response)
        version = _json_or_empty(api.health("/api/openapi.json")).get("info", {}).get("version")
        stats: dict[str, Any] = {}
        executors: list[dict[str, Any]] = []
        if ready_response.status_code == 200:
            stats = api.get("sessions/stats")
            workers = api.http.get("durable/workers")
            if workers.status_code == 200:
                executors = workers.json()["data"]
            elif workers.status_code != 404:  # 404: not an operator, the list is not for them
                api.check(workers)
    live = [e for e in executors if not e.get("stopped_at")]
    report = {
        "url": api.target.url,
        "healthy": health.status_code == 200,
        "ready": ready_response.status_code == 200,
        "version": version,
        "database": ready.get("database"),
        "engine": ready.get("engine"),
        "running_turns": sum(int(e.get("running_turns", 0)) for e in live),
        "sessions": stats,
        "executors": executors,
    }
    if json_out:
        print_json(report)
    else:
        print_fields(
            [
                ("server", report["url"]),
                ("health", "ok" if report["healthy"] else f"HTTP {health.status_code}"),
                ("ready", "yes" if report["ready"] else f"no (HTTP {ready_response.status_code})"),
                ("version", version or "unknown"),
                ("database", report["database"] or "unknown"),
                ("engine", report["engine"] or "unknown"),
                ("running turns", report["running_turns"]),
                ("sessions", _counts(stats)),
            ]
        )
        if executors:
            print_table(
                (
                    (
                        e["executor_id"],
                        e["role"],
                        e["hostname"],
                        e["pid"],
                        short(e["last_heartbeat_at"]),
                        e["running_turns"],
                        "stopped" if e.get("stopped_at") else "live",
                    )
                    for e in executors
                ),
                ("executor", "role", "host", "pid", "heartbeat", "turns", "state"),
                title="executors",
            )
    if not report["ready"]:
        raise typer.Exit(ERROR)


def _wait_ready(api: ApiClient, seconds: float) -> None:
    """Poll ``/readyz`` until it answers 200 or ``seconds`` pass (a server still starting
    refuses connections, then answers 503: both mean "not yet")."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if api.http.get(f"{api.target.url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def _json_or_empty(response: Any) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _counts(stats: dict[str, Any]) -> str:
    if not stats:
        return ""
    parts = [f"{stats.get(k, 0)} {k.replace('_', ' ')}" for k in ("active", "idle")]
    waiting = stats.get("waiting_for_tool_results", 0)
    if waiting:
        parts.append(f"{waiting} waiting for tool results")
    return f"{stats.get('total', 0)} total: " + ", ".join(parts)
