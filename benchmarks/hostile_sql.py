"""Hostile session SQL against a real `everloop serve` (issue 13): what a second client and the
server's memory see while one session runs SQL built to hurt.

Attacks (each on a fresh server and data dir):

- ``sql-printf``: ``sql_query`` of ``SELECT length(printf('%.*c', 2000000000, 'x'))``, one C
  call of SQLite that its progress handler does not interrupt (about 10 s on the test VM);
- ``sql-zeroblob``: ``sql_query`` of 1,001 rows of ``zeroblob(500000)`` (500 MB if the result
  were built whole; the result cap is 1 MB).

The attacker runs ``--calls`` turns, one after another, each making the one tool call. Meanwhile
a second client creates sessions (``POST /v1/sessions``) one at a time; its p50/p99/max are
reported next to the same client on the quiet server before the attack. Reported per attack:
the hostile calls' durations and errors (from ``tool.completed``), the server's peak resident
set (VmHWM) and the largest resident set of its SQL worker processes seen (sampled every 50 ms).

Prints progress to stderr and one JSON object to stdout.

Usage: python benchmarks/hostile_sql.py [--attack sql-printf|sql-zeroblob|all] [--calls 4]
[--timeout 1.0] [--src DIR]. ``--timeout`` sets EVERLOOP_SQL_STATEMENT_TIMEOUT_SECONDS; --src
runs the server from another checkout's source dir (e.g. the code before issue 13).
Talks to 127.0.0.1 only; starts and stops its own servers in temporary data dirs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from turns import Server, percentile, settle

ATTACKS = {
    "sql-printf": "SELECT length(printf('%.*c', 2000000000, 'x'))",
    "sql-zeroblob": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 1001) "
    "SELECT zeroblob(500000) FROM r",
}


def status_kib(pid: int, field: str) -> int:
    """A field of /proc/<pid>/status in KiB (VmRSS, VmHWM); 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def sql_workers(pid: int) -> list[int]:
    """The SQL worker processes among the children of ``pid``."""
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    workers = []
    for child in found:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"everloop.sql_worker" in command:
            workers.append(int(child))
    return workers


async def sample_workers(pid: int, stop: asyncio.Event) -> int:
    """The largest resident set (KiB) of one SQL worker of ``pid`` seen until ``stop``."""
    peak = 0
    while not stop.is_set():
        for child in sql_workers(pid):
            peak = max(peak, status_kib(child, "VmRSS"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
    return peak


async def create_sessions(
    client: httpx.AsyncClient, stop: asyncio.Event | None, count: int
) -> list[float]:
    """Latencies (ms) of ``POST /v1/sessions``, one at a time: ``count`` of them, or until
    ``stop`` is set."""
    latencies: list[float] = []
    while (stop is None and len(latencies) < count) or (stop is not None and not stop.is_set()):
        started = time.perf_counter()
        response = await client.post("v1/sessions", json={"title": "neighbour"})
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
    }


async def hostile_session(client: httpx.AsyncClient, sql: str) -> str:
    providers = (await client.get("v1/providers")).json()["data"]
    llmsim = next(p for p in providers if p["driver"] == "llmsim")
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            {"when": "^attack", "name": "sql_query", "arguments": {"database": "t", "sql": sql}}
        ],
    }
    model = await client.post(
        f"v1/providers/{llmsim['id']}/models",
        json={"model_id": f"sim-{uuid.uuid4().hex[:8]}", "settings": {"llmsim": script}},
    )
    model.raise_for_status()
    session = await client.post(
        "v1/sessions",
        json={"model_id": model.json()["id"], "capabilities": [{"ref": "sql_database"}]},
    )
    session.raise_for_status()
    sid = str(session.json()["id"])
    (await client.post(f"v1/sessions/{sid}/databases", json={"name": "t"})).raise_for_status()
    return sid


async def tool_results(client: httpx.AsyncClient, sid: str, turns: int) -> list[dict[str, Any]]:
    """The ``tool.completed`` data of the session once ``turns`` turns ended (bounded wait)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        found = (await client.get(f"v1/sessions/{sid}/events", params={"limit": 1000})).json()
        data = found["data"]
        ended = sum(1 for e in data if e["type"] in ("turn.completed", "turn.failed"))
        if ended >= turns:
            return [e["data"] for e in data if e["type"] == "tool.completed"]
        await asyncio.sleep(0.05)
    raise TimeoutError("the hostile turns did not end")


async def run_attack(name: str, calls: int, timeout: float, src: str | None) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="everloop-hostile-")) / "data"
    env = {"EVERLOOP_SQL_STATEMENT_TIMEOUT_SECONDS": str(timeout)}
    server = Server(data_dir, extra_env=env, src=src)
    try:
        token = await server.ready()
        await settle(server.proc.pid)
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(base_url=server.base + "/", headers=headers, timeout=600) as attacker,
            httpx.AsyncClient(base_url=server.base + "/", headers=headers, timeout=600) as other,
        ):
            sid = await hostile_session(attacker, ATTACKS[name])
            quiet = await create_sessions(other, None, 100)
            rss_before = status_kib(server.proc.pid, "VmRSS")
            print(f"{name}: quiet p50 {percentile(quiet, 0.5):.1f} ms; attacking", file=sys.stderr)
            stop = asyncio.Event()
            probe = asyncio.create_task(create_sessions(other, stop, 0))
            workers = asyncio.create_task(sample_workers(server.proc.pid, stop))
            started = time.perf_counter()
            for turn in range(1, calls + 1):
                message = {"role": "user", "content": [{"type": "text", "text": "attack"}]}
                url = f"v1/sessions/{sid}/messages"
                (await attacker.post(url, json={"message": message})).raise_for_status()
                results = await tool_results(attacker, sid, turn)
            attack_seconds = time.perf_counter() - started
            stop.set()
            during = await probe
            worker_peak = await workers
        return {
            "attack": name,
            "calls": calls,
            "timeout_seconds": timeout,
            "attack_seconds": round(attack_seconds, 2),
            "tool_ms": [r["duration_ms"] for r in results],
            "tool_errors": sorted({str(r.get("error"))[:120] for r in results}),
            "second_client_quiet": summary(quiet),
            "second_client_during_attack": summary(during),
            "server_rss_before_mib": round(rss_before / 1024, 1),
            "server_peak_rss_mib": round(status_kib(server.proc.pid, "VmHWM") / 1024, 1),
            "worker_peak_rss_mib": round(worker_peak / 1024, 1),
        }
    finally:
        server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attack", choices=[*ATTACKS, "all"], default="all")
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--src")
    args = parser.parse_args()
    names = list(ATTACKS) if args.attack == "all" else [args.attack]
    results = [await run_attack(name, args.calls, args.timeout, args.src) for name in names]
    print(json.dumps({"src": args.src or "installed", "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
