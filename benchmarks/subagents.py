"""Subagent fan-out against the same work done sequentially, on a real `everloop serve`.

The same work, eight units of "one model call -> one `add` tool call -> one model call", done
two ways in one run, alternating per repetition (the machine is shared; side by side is the
only fair comparison):

- fan-out: a parent session posts one message; its model answers with 8 `spawn_subagent` calls
  in one response; each child (a fresh session inheriting the parent's agent and model) makes
  one `add` call and answers; the parent's model then answers once more. Timed from sending
  the parent's `POST .../messages` to seeing the parent's `turn.completed` on its SSE stream.
- sequential: a fresh session of the same agent runs 8 turns one after another (post, wait for
  `turn.completed`, post the next). Timed from the first POST to the 8th `turn.completed`.

Every model call (llmsim) takes `--latency-ms` (default 200) before its first token, so the
parallelism shows: fan-out is 4 model calls deep on its critical path (the parent's, a child's
two, the parent's again), sequential 16; the table gives each floor (that many latencies) and
the time over it, which is the engine's. The agent has capabilities
`subagents` and `test_math`: children inherit the agent, not session-level capabilities. The
children get `spawn_subagent` too, but their task ("add ...") does not match the spawn rule.
Each fan-out run is checked: 8 `subagent.completed` and 8 `tool.completed` in the parent's log.

Reported: the median (and min/max) of each over `--reps` repetitions after one warm-up of each,
their ratio (sequential / fan-out), and the server's CPU per repetition. Prints a table to stderr
and one JSON object to stdout.

Usage: python benchmarks/subagents.py [--reps 7] [--children 8] [--latency-ms 200] [--pg URL]
       [--src DIR]
`--pg URL` runs on a fresh PostgreSQL database on that server instead of SQLite; `--src DIR`
runs the server from another checkout. Talks to 127.0.0.1 only; starts and stops its own
server in a temporary data dir.
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
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from turns import Server, SessionStream, cpu_seconds, settle

FAN_OUT_TEXT = "fan out the jobs"
TURN_DEADLINE = 120.0


def script(children: int, latency_ms: int) -> dict[str, Any]:
    """One llmsim script for every session: the parent's message matches the spawn rules
    (all in one response), a child's task and a sequential message match only `add`."""
    spawns = [
        {
            "when": "fan out",
            "name": "spawn_subagent",
            "arguments": {"name": f"worker-{i}", "task": f"add job {i}"},
        }
        for i in range(children)
    ]
    return {
        "response": {"type": "echo"},
        "tool_calls": [*spawns, {"when": r"\badd\b", "name": "add", "arguments": {"a": 2, "b": 3}}],
        "latency_ms": latency_ms,
    }


async def setup(client: httpx.AsyncClient, args: argparse.Namespace) -> tuple[str, str]:
    """The llmsim model and the agent every session of the run uses."""
    providers = (await client.get("v1/providers")).json()["data"]
    llmsim = next(p for p in providers if p["driver"] == "llmsim")
    model = await client.post(
        f"v1/providers/{llmsim['id']}/models",
        json={
            "model_id": "subagents-bench",
            "settings": {"llmsim": script(args.children, args.latency_ms)},
        },
    )
    model.raise_for_status()
    agent = await client.post(
        "v1/agents",
        json={
            "name": "fan-out-bench",
            "system_prompt": "Delegate when asked to fan out; add when asked to add.",
            "capabilities": [{"ref": "subagents"}, {"ref": "test_math"}],
        },
    )
    agent.raise_for_status()
    return str(model.json()["id"]), str(agent.json()["id"])


async def new_session(client: httpx.AsyncClient, model_id: str, agent_id: str) -> str:
    created = await client.post("v1/sessions", json={"model_id": model_id, "agent_id": agent_id})
    created.raise_for_status()
    return str(created.json()["id"])


async def post(client: httpx.AsyncClient, session_id: str, text: str) -> str:
    posted = await client.post(
        f"v1/sessions/{session_id}/messages",
        json={"message": {"role": "user", "content": [{"type": "text", "text": text}]}},
    )
    posted.raise_for_status()
    return str(posted.json()["turn_id"])


async def count_types(client: httpx.AsyncClient, session_id: str, *kinds: str) -> dict[str, int]:
    found = await client.get(f"v1/sessions/{session_id}/events", params={"limit": 1000})
    found.raise_for_status()
    events = found.json()["data"]
    return {kind: sum(e["type"] == kind for e in events) for kind in kinds}


async def fan_out(client: httpx.AsyncClient, model_id: str, agent_id: str, children: int) -> float:
    """Milliseconds from the parent's POST to its `turn.completed`."""
    session_id = await new_session(client, model_id, agent_id)
    stream = SessionStream(client, session_id)
    try:
        started = time.perf_counter()
        turn_id = await post(client, session_id, FAN_OUT_TEXT)
        async with asyncio.timeout(TURN_DEADLINE):
            finished = await stream.completed(turn_id)
    finally:
        await stream.close()
    seen = await count_types(client, session_id, "subagent.completed", "tool.completed")
    expected = {"subagent.completed": children, "tool.completed": children}
    if seen != expected:
        raise RuntimeError(f"fan-out did not do the work: {seen}, expected {expected}")
    return (finished - started) * 1000


async def sequential(client: httpx.AsyncClient, model_id: str, agent_id: str, turns: int) -> float:
    """Milliseconds from the first POST to the last of `turns` turns' `turn.completed`."""
    session_id = await new_session(client, model_id, agent_id)
    stream = SessionStream(client, session_id)
    try:
        started = time.perf_counter()
        finished = started
        for i in range(turns):
            turn_id = await post(client, session_id, f"add {i}")
            async with asyncio.timeout(TURN_DEADLINE):
                finished = await stream.completed(turn_id)
    finally:
        await stream.close()
    seen = await count_types(client, session_id, "tool.completed", "turn.completed")
    expected = {"tool.completed": turns, "turn.completed": turns}
    if seen != expected:
        raise RuntimeError(f"sequential did not do the work: {seen}, expected {expected}")
    return (finished - started) * 1000


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values), 1),
        "min_ms": round(min(values), 1),
        "max_ms": round(max(values), 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="everloop-subagents-"))
    env: dict[str, str] = {}
    admin = name = None
    if args.pg:
        name = f"everloop_subagents_{secrets.token_hex(4)}"
        admin = make_url(args.pg).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env["EVERLOOP_DATABASE_URL"] = (
            make_url(args.pg).set(database=name).render_as_string(hide_password=False)
        )
    server = Server(data_dir, extra_env=env, src=args.src)
    result: dict[str, Any] = {
        "database": "postgresql" if args.pg else "sqlite",
        "src": args.src or "(installed)",
        "children": args.children,
        "latency_ms": args.latency_ms,
        "reps": args.reps,
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), "
            f"Python {platform.python_version()}"
        ),
        "load_average_before": os.getloadavg()[0],
    }
    try:
        token = await server.ready()
        async with httpx.AsyncClient(
            base_url=server.base + "/",
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=50, keepalive_expiry=2.0),
            timeout=30.0,
        ) as client:
            model_id, agent_id = await setup(client, args)
            await settle(server.proc.pid)
            # Warm-up: the first turn of each kind pays for imports and cold caches.
            await fan_out(client, model_id, agent_id, args.children)
            await sequential(client, model_id, agent_id, args.children)
            timings: dict[str, list[float]] = {"fan_out": [], "sequential": []}
            cpu: dict[str, list[float]] = {"fan_out": [], "sequential": []}
            for rep in range(args.reps):
                # Alternate which goes first, so a drift in the machine's load hits both.
                order = ["fan_out", "sequential"] if rep % 2 == 0 else ["sequential", "fan_out"]
                for kind in order:
                    before = cpu_seconds(server.proc.pid)
                    if kind == "fan_out":
                        ms = await fan_out(client, model_id, agent_id, args.children)
                    else:
                        ms = await sequential(client, model_id, agent_id, args.children)
                    cpu[kind].append((cpu_seconds(server.proc.pid) - before) * 1000)
                    timings[kind].append(ms)
                print(
                    f"  rep {rep + 1}/{args.reps}: fan-out {timings['fan_out'][-1]:.0f} ms, "
                    f"sequential {timings['sequential'][-1]:.0f} ms",
                    file=sys.stderr,
                )
        fan, seq = summary(timings["fan_out"]), summary(timings["sequential"])
        fan["floor_ms"] = 4 * args.latency_ms
        seq["floor_ms"] = 2 * args.children * args.latency_ms
        result.update(
            fan_out=fan,
            sequential=seq,
            ratio_sequential_over_fan_out=round(seq["median_ms"] / fan["median_ms"], 2),
            server_cpu_ms_fan_out=round(statistics.median(cpu["fan_out"]), 1),
            server_cpu_ms_sequential=round(statistics.median(cpu["sequential"]), 1),
            fan_out_all_ms=[round(v, 1) for v in timings["fan_out"]],
            sequential_all_ms=[round(v, 1) for v in timings["sequential"]],
            load_average_after=os.getloadavg()[0],
        )
        return result
    except Exception:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        if admin and name:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def table(result: dict[str, Any]) -> str:
    n, latency = result["children"], result["latency_ms"]
    rows = [
        (f"fan-out: 1 parent turn, {n} subagents", result["fan_out"], "server_cpu_ms_fan_out"),
        (f"sequential: {n} turns, one session", result["sequential"], "server_cpu_ms_sequential"),
    ]
    lines = [
        f"{result['database']}, {n} units of model -> add -> model, llmsim {latency} ms per "
        f"model call, {result['reps']} reps, load {result['load_average_before']:.1f} -> "
        f"{result['load_average_after']:.1f}",
        f"{'':42} {'median':>9} {'min':>9} {'max':>9} {'floor':>9} {'over':>9} {'server CPU':>11}",
    ]
    for label, figures, cpu_key in rows:
        over = figures["median_ms"] - figures["floor_ms"]
        lines.append(
            f"{label:42} {figures['median_ms']:>7.0f}ms {figures['min_ms']:>7.0f}ms "
            f"{figures['max_ms']:>7.0f}ms {figures['floor_ms']:>7.0f}ms {over:>7.0f}ms "
            f"{result[cpu_key]:>9.0f}ms"
        )
    lines.append(
        f"{'sequential / fan-out (medians)':42} {result['ratio_sequential_over_fan_out']}x"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="measured repetitions of each")
    parser.add_argument("--children", type=int, default=8, help="subagents (and sequential turns)")
    parser.add_argument("--latency-ms", type=int, default=200, help="llmsim latency per model call")
    parser.add_argument(
        "--pg",
        default=None,
        help="PostgreSQL server URL (postgresql+psycopg://postgres@127.0.0.1/postgres): "
        "run on a fresh database there instead of SQLite",
    )
    parser.add_argument(
        "--src", default=None, help="run the server from this source dir (another checkout)"
    )
    result = asyncio.run(run(parser.parse_args()))
    print(table(result), file=sys.stderr)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
