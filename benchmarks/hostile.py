"""Hostile tenants (issue 13): what one tenant's expensive requests cost everybody else.

Starts a real `everloop serve` (SQLite by default) and, for each named attack, lets an attacker
client fire the attack's request back to back for `--seconds` (then waits for the last one to
end) while a victim client, on its own connection, alternates `GET /healthz` and
`POST /v1/sessions`, one request at a time. The victim's latencies (p50/p99/max per endpoint)
during each attack are compared with a quiet window of the same length before the attacks.

Attacks (`ATTACKS`, a list of named entries: add one by writing its `prepare`):

- regex-grep: `POST /v1/sessions/{id}/fs/_/grep {"pattern": "(a+)+$"}` over a file holding
  `"a" * N + "!"` (`--chars`, default 27, the issue's report). A backtracking engine needs
  about 2**N steps for that line; RE2 is linear.
- grep-large-workspace: an ordinary pattern over 8 files of 1 MiB (131,072 lines): plain CPU
  work, which must not run on the event loop.

Prints progress to stderr and one JSON object to stdout. Timings are the client's, from
sending a request to reading its whole response.

Usage: python benchmarks/hostile.py [--seconds 10] [--chars 27] [--attacks a,b] [--src DIR]
(--src runs the server from another checkout's source dir, e.g. the code before the fix.)
Talks to 127.0.0.1 only; starts and stops its own server in a temporary data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from turns import Server, percentile

Fire = Callable[[], Awaitable[str]]
"""Sends one hostile request; returns a short description of its outcome."""


@dataclass(frozen=True)
class Attack:
    name: str
    description: str
    prepare: Callable[[httpx.AsyncClient, argparse.Namespace], Awaitable[Fire]]
    """Creates what the attack needs (as the attacking tenant); returns how to fire it."""


async def _session_with_files(client: httpx.AsyncClient, files: dict[str, str]) -> str:
    created = await client.post("v1/sessions", json={"title": "attacker"})
    created.raise_for_status()
    session_id = str(created.json()["id"])
    for path, content in files.items():
        url = f"v1/sessions/{session_id}/fs/{path}"
        written = await client.post(url, json={"content": content})
        written.raise_for_status()
    return session_id


def _grep(client: httpx.AsyncClient, session_id: str, pattern: str) -> Fire:
    async def fire() -> str:
        found = await client.post(f"v1/sessions/{session_id}/fs/_/grep", json={"pattern": pattern})
        if found.is_error:
            return f"{found.status_code}"
        lines = sum(len(r["matches"]) for r in found.json()["data"])
        return f"{found.status_code}, {lines} matching lines"

    return fire


async def regex_grep(client: httpx.AsyncClient, args: argparse.Namespace) -> Fire:
    content = "a" * args.chars + "!\n"
    session_id = await _session_with_files(client, {"evil.txt": content})
    return _grep(client, session_id, "(a+)+$")


async def grep_large_workspace(client: httpx.AsyncClient, _args: argparse.Namespace) -> Fire:
    line = "x" * 56 + "0123456\n"  # 64 bytes; 16,384 lines per MiB
    files = {f"big/{i}.txt": line * 16_384 for i in range(8)}
    session_id = await _session_with_files(client, files)
    return _grep(client, session_id, "[0-9]{3}z$")


ATTACKS = [
    Attack("regex-grep", "catastrophic backtracking pattern over a short line", regex_grep),
    Attack("grep-large-workspace", "ordinary pattern over 8 MiB of lines", grep_large_workspace),
]


def summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"requests": 0}
    return {
        "requests": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "max_ms": round(max(values), 2),
    }


async def victim(client: httpx.AsyncClient, health_url: str, stop: asyncio.Event) -> Any:
    """Alternate /healthz and a session create until ``stop``; their latencies."""
    latencies: dict[str, list[float]] = {"healthz": [], "create_session": []}
    while not stop.is_set():
        for name in latencies:
            started = time.perf_counter()
            if name == "healthz":
                response = await client.get(health_url)
            else:
                response = await client.post("v1/sessions", json={"title": "victim"})
            response.raise_for_status()
            latencies[name].append((time.perf_counter() - started) * 1000)
    return {name: summary(values) for name, values in latencies.items()}


async def attacker(fire: Fire, seconds: float) -> Any:
    """Fire back to back for ``seconds``, then let the request in flight end."""
    outcomes: dict[str, int] = {}
    durations: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        outcome = await fire()
        durations.append((time.perf_counter() - started) * 1000)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {"outcomes": outcomes, **summary(durations)}


async def window(
    victim_client: httpx.AsyncClient, health_url: str, seconds: float, fire: Fire | None
) -> Any:
    """The victim's latencies over ``seconds`` alone, or for as long as the attack lasts."""
    stop = asyncio.Event()
    measuring = asyncio.create_task(victim(victim_client, health_url, stop))
    if fire is None:
        await asyncio.sleep(seconds)
        attack = None
    else:
        attack = await attacker(fire, seconds)
    stop.set()
    return {"victim": await measuring, "attack": attack}


def _client(server: Server, token: str) -> httpx.AsyncClient:
    # One connection per client, kept alive: the attacker and the victim never share one.
    return httpx.AsyncClient(
        base_url=server.base + "/",
        headers={"Authorization": f"Bearer {token}"},
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        timeout=httpx.Timeout(600, pool=600),
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    chosen = [a for a in ATTACKS if not args.attacks or a.name in args.attacks.split(",")]
    data_dir = Path(tempfile.mkdtemp(prefix="everloop-bench-")) / "data"
    server = Server(data_dir, src=args.src)
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC)
    try:
        token = await server.ready()
        health_url = f"http://127.0.0.1:{server.port}/healthz"
        async with _client(server, token) as attacker_client, _client(server, token) as victims:
            await window(victims, health_url, 1.0, None)  # warm up both connections
            print("  quiet window", file=sys.stderr)
            results: dict[str, Any] = {
                "quiet": await window(victims, health_url, args.seconds, None)
            }
            for attack in chosen:
                print(f"  attack {attack.name}", file=sys.stderr)
                fire = await attack.prepare(attacker_client, args)
                results[attack.name] = {
                    "description": attack.description,
                    **await window(victims, health_url, args.seconds, fire),
                }
    finally:
        server.stop()
    return {
        "benchmark": "hostile",
        "started": started.isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_1m_before": round(load_before[0], 2),
            "load_1m_after": round(os.getloadavg()[0], 2),
        },
        "settings": {"seconds": args.seconds, "chars": args.chars, "src": args.src},
        "windows": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each window")
    parser.add_argument("--chars", type=int, default=27, help="length of the regex-grep line")
    parser.add_argument("--attacks", default="", help="comma-separated names (default: all)")
    parser.add_argument("--src", default=None, help="run the server from this source dir")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
