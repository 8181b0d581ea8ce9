"""What budget enforcement costs per model call, on a real `everloop serve` (llmsim, no latency).

Three servers, measured in one run, alternating per repetition (the machine is shared; side by
side is the only fair comparison):

- `base`: the code before budgets existed (`--base-src DIR`, a checkout of that commit); no
  check, no charge;
- `none`: this code, with no budget anywhere (a check that finds nothing, a charge that finds
  nothing);
- `four`: this code, with four budgets that apply to every session (its own, its agent's...
  here: the session's, its owner user's, the org's in tokens, and the org's in usd), each far
  from its limits: every model call is checked against four and charged to four.

Each repetition runs `--sessions` sessions x `--turns` turns of "model -> add -> model" (two
model calls per turn) and reads the server's CPU time (utime + stime from /proc) around it.
Reported: server CPU per model call (ms), median over `--reps` after a warm-up, and the
differences `none - base` and `four - base`. The bar (issue 16): enforcement adds at most 1 ms
per model call.

Usage: python benchmarks/budgets.py --base-src DIR [--reps 5] [--sessions 8] [--turns 10]
       [--pg URL]
Talks to 127.0.0.1 only; starts and stops its own servers in temporary data dirs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from turns import SCRIPT, Server, SessionStream, cpu_seconds, settle, turn


async def budgets_for(client: httpx.AsyncClient, sessions: list[str], shared: bool) -> None:
    """A budget for each session; with ``shared``, the three every session shares (made once
    per server, so each session has four)."""
    first = (await client.get(f"v1/sessions/{sessions[0]}")).json()
    org_id, user_id = first["organization_id"], first["resolved_owner_user_id"]
    for session_id in sessions:
        created = await client.post(
            "v1/budgets",
            json={
                "subject_type": "session",
                "subject_id": session_id,
                "currency": "tokens",
                "limit": 1e12,
            },
        )
        created.raise_for_status()
    if not shared:
        return
    for subject_type, subject_id, currency in (
        ("user", user_id, "tokens"),
        ("org", org_id, "tokens"),
        ("org", org_id, "usd"),
    ):
        created = await client.post(
            "v1/budgets",
            json={
                "subject_type": subject_type,
                "subject_id": subject_id,
                "currency": currency,
                "limit": 1e12,
                "soft_limit": 1e11,
            },
        )
        created.raise_for_status()


async def sessions_of(client: httpx.AsyncClient, count: int) -> list[str]:
    """``count`` new sessions on the benchmark's llmsim model (made once per server)."""
    providers = (await client.get("v1/providers")).json()["data"]
    llmsim = next(p for p in providers if p["driver"] == "llmsim")
    models = (await client.get(f"v1/providers/{llmsim['id']}/models")).json()
    listed = models["data"] if isinstance(models, dict) else models
    found = next((m["id"] for m in listed if m.get("model_id") == "bench"), None)
    if found is None:
        made = await client.post(
            f"v1/providers/{llmsim['id']}/models",
            json={"model_id": "bench", "settings": {"llmsim": SCRIPT}},
        )
        made.raise_for_status()
        found = made.json()["id"]
    sessions = []
    for _ in range(count):
        created = await client.post(
            "v1/sessions", json={"model_id": found, "capabilities": [{"ref": "test_math"}]}
        )
        created.raise_for_status()
        sessions.append(created.json()["id"])
    return sessions


async def repetition(
    server: Server, token: str, args: argparse.Namespace, budgets: bool, first: bool
) -> float:
    """Server CPU milliseconds per model call over one repetition."""
    async with httpx.AsyncClient(
        base_url=server.base + "/", headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        sessions = await sessions_of(client, args.sessions)
        if budgets:
            await budgets_for(client, sessions, shared=first)
        streams = [SessionStream(client, s) for s in sessions]
        await settle(server.proc.pid)
        before = cpu_seconds(server.proc.pid)

        async def drive(stream: SessionStream) -> None:
            for n in range(args.turns):
                await turn(client, stream, f"add please {n}")

        await asyncio.gather(*(drive(s) for s in streams))
        spent = cpu_seconds(server.proc.pid) - before
        for stream in streams:
            await stream.close()
    calls = args.sessions * args.turns * 2
    return spent * 1000 / calls


async def run(args: argparse.Namespace) -> dict[str, Any]:
    configs = [("base", args.base_src, False), ("none", None, False), ("four", None, True)]
    servers: dict[str, tuple[Server, str]] = {}
    results: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    dirs = []
    admin = (
        make_url(args.pg).set(drivername="postgresql").render_as_string(False) if args.pg else None
    )
    databases: list[str] = []
    try:
        for name, src, _ in configs:
            data_dir = Path(tempfile.mkdtemp(prefix=f"everloop-bench-{name}-"))
            dirs.append(data_dir)
            env: dict[str, str] = {}
            if admin is not None:
                database = f"everloop_budgets_{name}_{secrets.token_hex(4)}"
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{database}"')
                databases.append(database)
                env["EVERLOOP_DATABASE_URL"] = (
                    make_url(args.pg).set(database=database).render_as_string(hide_password=False)
                )
            server = Server(data_dir, extra_env=env, src=src)
            servers[name] = (server, await server.ready())
        for rep in range(args.reps + 1):  # the first is a warm-up
            for name, _, budgets in configs:
                server, token = servers[name]
                per_call = await repetition(server, token, args, budgets, first=rep == 0)
                if rep > 0:
                    results[name].append(per_call)
                print(f"rep {rep} {name}: {per_call:.2f} ms/call", file=sys.stderr)
    finally:
        for server, _ in servers.values():
            server.stop()
        for data_dir in dirs:
            shutil.rmtree(data_dir, ignore_errors=True)
        for database in databases:
            assert admin is not None
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    medians = {name: statistics.median(values) for name, values in results.items()}
    return {
        "database": "postgresql" if args.pg else "sqlite",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": os.getloadavg(),
        "sessions": args.sessions,
        "turns": args.turns,
        "reps": args.reps,
        "cpu_ms_per_call": medians,
        "all": results,
        "none_minus_base_ms": medians["none"] - medians["base"],
        "four_minus_base_ms": medians["four"] - medians["base"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-src", required=True, help="src dir of the code before budgets")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument(
        "--pg",
        help="PostgreSQL server URL (postgresql+psycopg://postgres@127.0.0.1/postgres): each "
        "server gets a fresh database there, dropped at the end",
    )
    args = parser.parse_args()
    result = asyncio.run(run(args))
    medians = result["cpu_ms_per_call"]
    print(
        "server CPU per model call (median): "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in medians.items())
        + f"; four - base {result['four_minus_base_ms']:+.2f} ms",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
