"""Schedules: what the timer costs an idle server, and how late a fire starts its turn.

On one real `everloop serve` (SQLite, or PostgreSQL with `--database-url`):

- idle timer cost: the server's CPU (utime + stime from /proc/<pid>/stat) over `--idle-seconds`
  (default 60) as a percent of one core, first with no schedules, then with `--schedules`
  (default 1,000) enabled ones that are not due for months (`0 0 1 1 *`, spread over
  sessions of 20). Nothing else happens meanwhile. Bar: under 2 % of a core. On PostgreSQL
  also the CPU of the database's backends serving the server (what the timer's queries cost
  there; approximate: a backend that ends within the window is missed).
- fire latency: `--fires` (default 20) one-shot schedules, each in a session of its own, due
  one after another over `--spread-seconds` (default 20), the idle schedules still there. For
  each fire: its execution's `started_at` minus its due time (`scheduled_at`), and the fired
  turn's `turn.started` (its event's `ts`) minus the due time; p50 / p95 / max. Bar: a fire
  starts its turn within 1 s of its due time. Every fire is checked: one execution, trigger
  `schedule`, its turn completed.

The server writes the timestamps (milliseconds, the one clock of this machine); the client
only reads them. Prints a table to stderr and one JSON object to stdout.

Usage: python benchmarks/schedules.py [--schedules 1000] [--idle-seconds 60] [--fires 20]
       [--spread-seconds 20] [--database-url URL] [--poll-seconds S] [--src DIR]
`--database-url` names a PostgreSQL database the benchmark owns: it is dropped and created
again first, and dropped at the end. `--poll-seconds` sets how often the timer looks for
schedules made elsewhere (`EVERLOOP_SCHEDULE_POLL_SECONDS`; 60 all but stops it, to see its
share of the idle cost). `--src DIR` runs the server from another checkout. Talks to 127.0.0.1
only; starts and stops its own server in a temporary data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from subagents import cpu_model
from turns import Server, cpu_seconds, percentile, settle

IDLE_CRON = "0 0 1 1 *"  # yearly: never due during a run
PER_SESSION = 20
SCRIPT = {"response": {"type": "fixed", "text": "ok"}}
CONCURRENCY = 8
FIRE_DEADLINE = 60.0


def stamp(moment: datetime) -> str:
    """The server's timestamp form (UTC, milliseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def schedule_body(session_id: str, name: str, **when: str) -> dict[str, Any]:
    return {
        "name": name,
        "timezone": "UTC",
        "target": {
            "type": "workflow",
            "name": "session.run",
            "input": {"session_id": session_id, "message": f"tick {name}"},
        },
        **when,
    }


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    if response.status_code != 201:
        raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:300]}")
    created: dict[str, Any] = response.json()
    return created


async def model(client: httpx.AsyncClient) -> str:
    providers = (await client.get("v1/providers")).json()["data"]
    llmsim = next(p for p in providers if p["driver"] == "llmsim")
    created = await post(
        client,
        f"v1/providers/{llmsim['id']}/models",
        {"model_id": "schedules-bench", "settings": {"llmsim": SCRIPT}},
    )
    return str(created["id"])


async def bounded(count: int, make: Any) -> list[Any]:
    """``make(i)`` for i in range(count), at most CONCURRENCY at once, in order."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int) -> Any:
        async with gate:
            return await make(index)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def idle_schedules(client: httpx.AsyncClient, model_id: str, count: int) -> None:
    sessions = await bounded(
        -(-count // PER_SESSION),
        lambda _: post(client, "v1/sessions", {"model_id": model_id}),
    )

    async def one(index: int) -> Any:
        session_id = sessions[index // PER_SESSION]["id"]
        body = schedule_body(session_id, f"idle-{index}", cron_expression=IDLE_CRON)
        return await post(client, "v1/durable/schedules", body)

    await bounded(count, one)


def backend_pids(url: str | None) -> list[int]:
    """The PostgreSQL backends serving the server's database (none on SQLite)."""
    if url is None:
        return []
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(row[0]) for row in rows]


def cpu_of(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # ended meanwhile
            found[pid] = cpu_seconds(pid)
    return found


async def idle_cpu(pid: int, seconds: float, database_url: str | None) -> tuple[float, float]:
    """CPU over ``seconds`` of doing nothing, in percent of one core: the server's, and its
    database backends' (PostgreSQL; approximate: a backend that ended meanwhile is missed)."""
    await settle(pid)
    backends = cpu_of(backend_pids(database_url))
    before, started = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    server = cpu_seconds(pid) - before
    after = cpu_of(backend_pids(database_url))
    elapsed = time.monotonic() - started
    database = sum(value - backends.get(key, 0.0) for key, value in after.items())
    return server / elapsed * 100, database / elapsed * 100


async def fire_latency(
    client: httpx.AsyncClient, model_id: str, fires: int, spread: float
) -> dict[str, list[float]]:
    """One-shot schedules due one after another; per fire, ms from its due time to its
    execution's start and to its turn's ``turn.started``."""
    sessions = await bounded(fires, lambda _: post(client, "v1/sessions", {"model_id": model_id}))
    first = datetime.now(UTC) + timedelta(seconds=3)
    step = spread / max(fires - 1, 1)
    schedules = []
    for index, session in enumerate(sessions):
        due = first + timedelta(seconds=index * step)
        body = schedule_body(session["id"], f"once-{index}", scheduled_at=stamp(due))
        schedules.append(await post(client, "v1/durable/schedules", body))
    print(f"  {fires} one-shots due from {stamp(first)} every {step:.2f} s", file=sys.stderr)

    figures: dict[str, list[float]] = {"fire_ms": [], "turn_started_ms": []}
    deadline = time.monotonic() + spread + FIRE_DEADLINE
    for schedule in schedules:
        execution = await settled_execution(client, schedule["id"], deadline)
        if execution["trigger"] != "schedule" or execution["status"] != "completed":
            raise RuntimeError(f"fire did not complete as scheduled: {execution}")
        due = instant(execution["scheduled_at"])
        events = (
            await client.get(
                f"v1/sessions/{schedule['session_id']}/events",
                params={"types": ["turn.started"], "limit": 100},
            )
        ).json()["data"]
        [started] = [e for e in events if e["data"]["turn_id"] == execution["turn_id"]]
        figures["fire_ms"].append((instant(execution["started_at"]) - due).total_seconds() * 1000)
        figures["turn_started_ms"].append((instant(started["ts"]) - due).total_seconds() * 1000)
    return figures


async def settled_execution(
    client: httpx.AsyncClient, schedule_id: str, deadline: float
) -> dict[str, Any]:
    while True:
        found = (await client.get(f"v1/durable/schedules/{schedule_id}/executions")).json()
        if found["total"] > 1:
            raise RuntimeError(f"a one-shot fired {found['total']} times: {found['data']}")
        if found["data"] and found["data"][0]["status"] not in ("pending", "running"):
            execution: dict[str, Any] = found["data"][0]
            return execution
        if time.monotonic() > deadline:
            raise TimeoutError(f"schedule {schedule_id} did not fire and settle")
        await asyncio.sleep(0.2)


def spread_of(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 1),
        "p95_ms": round(percentile(values, 0.95), 1),
        "max_ms": round(max(values), 1),
    }


def recreate(url: str | None, *, drop_only: bool = False) -> None:
    if url is None:
        return
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{target.database}"')


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="everloop-schedules-"))
    env = {
        # Room for the idle schedules and the one-shots (the defaults are 5 and 100).
        "EVERLOOP_SCHEDULE_MAX_PER_SESSION": str(PER_SESSION),
        "EVERLOOP_SCHEDULE_MAX_PER_ORG": str(args.schedules + args.fires + 10),
    }
    recreate(args.database_url)
    if args.database_url:
        env["EVERLOOP_DATABASE_URL"] = args.database_url
    if args.poll_seconds is not None:
        env["EVERLOOP_SCHEDULE_POLL_SECONDS"] = str(args.poll_seconds)
    result: dict[str, Any] = {
        "database": "postgresql" if args.database_url else "sqlite",
        "src": args.src or "(installed)",
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), "
            f"Python {platform.python_version()}"
        ),
        "load_average_before": os.getloadavg()[0],
        "schedules": args.schedules,
        "idle_seconds": args.idle_seconds,
        "fires": args.fires,
        "spread_seconds": args.spread_seconds,
        "poll_seconds": args.poll_seconds,
    }
    server = Server(data_dir, extra_env=env, src=args.src)
    try:
        token = await server.ready()
        async with httpx.AsyncClient(
            base_url=server.base + "/",
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=50, keepalive_expiry=2.0),
            timeout=30.0,
        ) as client:
            model_id = await model(client)
            pid = server.proc.pid
            print(f"  idle, no schedules: {args.idle_seconds:g} s", file=sys.stderr)
            zero = await idle_cpu(pid, args.idle_seconds, args.database_url)
            started = time.perf_counter()
            await idle_schedules(client, model_id, args.schedules)
            result["create_schedules_seconds"] = round(time.perf_counter() - started, 1)
            print(f"  idle, {args.schedules} schedules: {args.idle_seconds:g} s", file=sys.stderr)
            many = await idle_cpu(pid, args.idle_seconds, args.database_url)
            result["idle_cpu_percent_0"], result["idle_db_cpu_percent_0"] = (
                round(zero[0], 3),
                round(zero[1], 3),
            )
            result["idle_cpu_percent_n"], result["idle_db_cpu_percent_n"] = (
                round(many[0], 3),
                round(many[1], 3),
            )
            figures = await fire_latency(client, model_id, args.fires, args.spread_seconds)
        result.update(
            fire=spread_of(figures["fire_ms"]),
            turn_started=spread_of(figures["turn_started_ms"]),
            fire_all_ms=[round(v, 1) for v in figures["fire_ms"]],
            turn_started_all_ms=[round(v, 1) for v in figures["turn_started_ms"]],
            load_average_after=os.getloadavg()[0],
        )
        return result
    except Exception:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        recreate(args.database_url, drop_only=True)


def table(result: dict[str, Any]) -> str:
    idle_bar = "under 2 % of a core"
    poll = result["poll_seconds"]
    every = "the default" if poll is None else f"{poll:g} s"
    zero, many = result["idle_cpu_percent_0"], result["idle_cpu_percent_n"]
    lines = [
        f"{result['database']}, load {result['load_average_before']:.1f} -> "
        f"{result['load_average_after']:.1f}",
        f"idle CPU over {result['idle_seconds']:g} s, timer poll {every} (bar: server {idle_bar}):",
        f"  {'':32} {'server':>9} {'database':>9}",
        f"  {'0 schedules':32} {zero:>8.2f}% {result['idle_db_cpu_percent_0']:>8.2f}%",
        f"  {str(result['schedules']) + ' enabled schedules':32} {many:>8.2f}% "
        f"{result['idle_db_cpu_percent_n']:>8.2f}%",
        f"fire latency, {result['fires']} one-shots over {result['spread_seconds']:g} s "
        "(bar: turn started within 1,000 ms):",
        f"  {'':32} {'p50':>9} {'p95':>9} {'max':>9}",
    ]
    for label, key in (
        ("due -> execution started_at", "fire"),
        ("due -> turn.started", "turn_started"),
    ):
        figures = result[key]
        lines.append(
            f"  {label:32} {figures['p50_ms']:>7.0f}ms {figures['p95_ms']:>7.0f}ms "
            f"{figures['max_ms']:>7.0f}ms"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=1000, help="idle enabled schedules")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="each CPU window")
    parser.add_argument("--fires", type=int, default=20, help="one-shot schedules timed")
    parser.add_argument("--spread-seconds", type=float, default=20.0, help="their due times span")
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL database this run owns (dropped and created again): "
        "postgresql+psycopg://postgres@127.0.0.1/ev_sched_bench; default SQLite",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=None,
        help="EVERLOOP_SCHEDULE_POLL_SECONDS of the server (default: its own, 1 s)",
    )
    parser.add_argument(
        "--src", default=None, help="run the server from this source dir (another checkout)"
    )
    result = asyncio.run(run(parser.parse_args()))
    print(table(result), file=sys.stderr)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
