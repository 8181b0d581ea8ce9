"""What telemetry costs a turn in a real server, measured side by side (issue 24).

Starts one ``everloop serve`` per telemetry level (``off`` and the levels named), all at once,
each with its own data dir (SQLite, llmsim answering at once, one ``add`` tool call per turn, as
``benchmarks/turns.py``), and drives them in turn, one block per server per round, the order
rotating each round:

- W1 block: ``--w1`` sequential turns on one session;
- W2 block: ``--sessions`` sessions x ``--turns`` turns, the sessions concurrently;

on sessions made for the block (a long session's turns cost more: each block starts alike).

With ``--together`` every server runs its block at the same time, each phase started together,
so at every moment they share the machine's state (frequency, caches, other tenants); the
servers compete for the two cores then, which raises every level's CPU per turn alike. Each
block's server CPU (utime + stime from /proc) is divided by its turns. The servers share
the machine over the same minutes, so the figure to read is the ratio of a level's block to
``off``'s block of the same round (median over rounds): servers run one after another see
different background load and move by +-10 % between runs on a shared 2-core machine.

Levels (as in ``benchmarks/turns.py``): ``off`` no exporter, WARNING logs (no access or turn
line); ``logs`` INFO logs and ``/metrics`` scraped every ``--scrape-seconds`` (15: Prometheus'
default is 60, its example configuration's 15); ``traced`` every turn traced and exported with
OTLP/HTTP to a sink in this process and ``/metrics`` scraped, logs at WARNING as ``off`` (tracing
and metrics alone); ``full`` INFO logs, scrapes and every turn traced and exported; ``sampled``
full with one turn in ten.

Usage: python -m benchmarks.telemetry_overhead [--levels logs,full] [--rounds 12] [--together]
Talks to 127.0.0.1 only; starts and stops its own servers in temporary data dirs.
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
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from benchmarks.turns import (
    Server,
    SessionStream,
    _Sink,
    cpu_seconds,
    scrape_metrics,
    settle,
    setup,
    turn,
)


@dataclass
class Level:
    name: str
    server: Server
    client: httpx.AsyncClient
    w1: SessionStream
    w2: list[SessionStream]
    model_id: str
    w1_cpu: list[float] = field(default_factory=list)  # ms per turn, one per round
    w2_cpu: list[float] = field(default_factory=list)


def environment(level: str, sink_port: int) -> dict[str, str]:
    env: dict[str, str] = {}
    if level not in ("off", "traced"):
        env["EVERLOOP_LOG_LEVEL"] = "INFO"
    if level in ("full", "sampled", "traced"):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
    if level == "sampled":
        env["EVERLOOP_TRACE_SAMPLE_RATIO"] = "0.1"
    return env


async def fresh_sessions(level: Level, args: argparse.Namespace) -> None:
    """New sessions for the next block (a session's turns cost more as its log grows: each
    block starts alike)."""
    for stream in [level.w1, *level.w2]:
        await stream.close()
    streams = []
    for _ in range(1 + args.sessions):
        created = await level.client.post(
            "v1/sessions",
            json={"model_id": level.model_id, "capabilities": [{"ref": "test_math"}]},
        )
        created.raise_for_status()
        streams.append(SessionStream(level.client, created.json()["id"]))
    level.w1, level.w2 = streams[0], streams[1:]
    for i in range(2):  # the session's first turn does one-time work (titles, caches)
        await turn(level.client, level.w1, f"add warm {i}")


async def block(
    level: Level, args: argparse.Namespace, round_no: int, barrier: asyncio.Barrier | None
) -> None:
    """One W1 and one W2 block on ``level``'s server; with a ``barrier`` (``--together``),
    each phase starts at the same moment on every server."""

    async def together() -> None:
        if barrier is not None:
            await barrier.wait()

    pid = level.server.proc.pid
    await fresh_sessions(level, args)
    await settle(pid, 5.0)
    await together()
    before = cpu_seconds(pid)
    for i in range(args.w1):
        await turn(level.client, level.w1, f"add {round_no}.{i}")
    level.w1_cpu.append((cpu_seconds(pid) - before) * 1000 / args.w1)

    async def drive(stream: SessionStream) -> None:
        for i in range(args.turns):
            await turn(level.client, stream, f"add {round_no}.{i}")

    await settle(pid, 5.0)
    await together()
    before = cpu_seconds(pid)
    await asyncio.gather(*(drive(s) for s in level.w2))
    level.w2_cpu.append((cpu_seconds(pid) - before) * 1000 / (args.turns * len(level.w2)))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    names = ["off", *[n for n in args.levels.split(",") if n and n != "off"]]
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    root = Path(tempfile.mkdtemp(prefix="everloop-bench-"))
    servers = [
        Server(root / name, environment(name, sink.server_address[1]), src=args.src)
        for name in names
    ]
    levels: list[Level] = []
    stop_scraping = asyncio.Event()
    scrapers: list[asyncio.Task[int]] = []
    try:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        for name, server in zip(names, servers, strict=True):
            token = await server.ready()
            client = httpx.AsyncClient(
                base_url=server.base + "/",
                headers={"Authorization": f"Bearer {token}"},
                limits=limits,
                timeout=30.0,
            )
            sessions = await setup(client, 1 + args.sessions)
            streams = [SessionStream(client, sid) for sid in sessions]
            model_id = (await client.get(f"v1/sessions/{sessions[0]}")).json()["model_id"]
            levels.append(Level(name, server, client, streams[0], streams[1:], model_id))
            if name != "off":
                scrapers.append(
                    asyncio.create_task(
                        scrape_metrics(client, server.port, stop_scraping, args.scrape_seconds)
                    )
                )
        for level in levels:  # warm-up, not measured
            for i in range(5):
                await turn(level.client, level.w1, f"add warm {i}")
        for round_no in range(args.rounds):
            if args.together:
                barrier = asyncio.Barrier(len(levels))
                await asyncio.gather(*(block(lv, args, round_no, barrier) for lv in levels))
            else:
                shift = round_no % len(levels)
                for level in levels[shift:] + levels[:shift]:
                    await block(level, args, round_no, None)
            print(
                f"  round {round_no + 1}/{args.rounds}: "
                + ", ".join(f"{lv.name} {lv.w1_cpu[-1]:.1f}/{lv.w2_cpu[-1]:.1f}" for lv in levels)
                + " ms per turn (W1/W2)",
                file=sys.stderr,
            )
        stop_scraping.set()
        await asyncio.gather(*scrapers, return_exceptions=True)
        off = levels[0]
        result: dict[str, Any] = {
            "rounds": args.rounds,
            "w1_turns_per_block": args.w1,
            "w2_turns_per_block": f"{args.sessions} x {args.turns}",
            "code": args.src or "this checkout",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}",
            "load_average_at_end": round(os.getloadavg()[0], 1),
            "otlp_bytes_received": _Sink.received,
            "levels": {},
        }
        for level in levels:
            entry = {
                "w1_ms_per_turn_median": round(statistics.median(level.w1_cpu), 2),
                "w2_ms_per_turn_median": round(statistics.median(level.w2_cpu), 2),
            }
            if level is not off:
                w1 = [a / b for a, b in zip(level.w1_cpu, off.w1_cpu, strict=True)]
                w2 = [a / b for a, b in zip(level.w2_cpu, off.w2_cpu, strict=True)]
                entry["w1_vs_off_median_pct"] = round((statistics.median(w1) - 1) * 100, 1)
                entry["w2_vs_off_median_pct"] = round((statistics.median(w2) - 1) * 100, 1)
                entry["w1_vs_off_mean_pct"] = round(
                    (statistics.fmean(level.w1_cpu) / statistics.fmean(off.w1_cpu) - 1) * 100, 1
                )
                entry["w2_vs_off_mean_pct"] = round(
                    (statistics.fmean(level.w2_cpu) / statistics.fmean(off.w2_cpu) - 1) * 100, 1
                )
            result["levels"][level.name] = entry
        return result
    finally:
        for level in levels:
            for stream in [level.w1, *level.w2]:
                await stream.close()
            await level.client.aclose()
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
        sink.shutdown()
        sink.server_close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="logs,full", help="levels besides off, e.g. full")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--w1", type=int, default=60, help="sequential turns per W1 block")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--turns", type=int, default=8, help="turns per session per W2 block")
    parser.add_argument("--src", default=None, help="run the servers from this source dir")
    parser.add_argument(
        "--scrape-seconds", type=float, default=15.0, help="/metrics scrape interval (logs, full)"
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="drive every server at once, phase by phase (they share the machine's state at "
        "each moment), rather than one after another",
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
