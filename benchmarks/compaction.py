"""A long session with and without compaction (issue 20): turn latency and prompt tokens as the
history grows, on a real `everloop serve` (SQLite unless EVERLOOP_DATABASE_URL says otherwise).

Two sessions run side by side, one turn each in alternation, on an llmsim model whose profile
says its context window is 8,000 tokens: `compacted` on the `generic` harness (which has the
`compaction` capability), `full` on the `base` harness (no compaction; llmsim does not enforce
the window, so it keeps answering however long the prompt grows). Every turn is ~1,000 tokens:
a ~750-token user message and a 250-token answer.

Per turn: latency from `POST .../messages` to that turn's `turn.completed` on the session's
SSE stream, and the prompt the model was sent (`input_tokens` of the turn's `llm.generation`,
as llmsim counted it). Reported at turns 10, 100 and 1,000: the median latency and the median
and largest prompt over the 9 turns up to it, plus the server's CPU per turn over the run.

Usage: python -m benchmarks.compaction [--turns 1000] [--window 8000]
Talks to 127.0.0.1 only; starts and stops its own server in a temporary data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from benchmarks.turns import Server, SessionStream, cpu_seconds, settle

SCRIPT = {"response": {"type": "lorem", "tokens": 250}}
MARKS = (10, 100, 1000)


def user_text(turn: int) -> str:
    return f"Turn {turn}: " + " ".join(f"word{turn}x{i}" for i in range(300))


async def prompt_tokens(client: httpx.AsyncClient, session_id: str, turn_id: str) -> int:
    listed = await client.get(
        f"v1/sessions/{session_id}/events",
        params={"turn_id": turn_id, "types": "llm.generation"},
    )
    listed.raise_for_status()
    generation = listed.json()["data"][-1]
    return int(generation["data"]["metadata"]["usage"]["input_tokens"])


async def one_turn(
    client: httpx.AsyncClient, stream: SessionStream, turn: int
) -> tuple[float, int]:
    started = time.perf_counter()
    posted = await client.post(
        f"v1/sessions/{stream.session_id}/messages",
        json={"message": {"role": "user", "content": [{"type": "text", "text": user_text(turn)}]}},
    )
    posted.raise_for_status()
    turn_id = posted.json()["turn_id"]
    finished = await stream.completed(turn_id)
    tokens = await prompt_tokens(client, stream.session_id, turn_id)
    return (finished - started) * 1000, tokens


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="everloop-bench-"))
    server = Server(data_dir)
    result: dict[str, Any] = {
        "database": os.environ.get("EVERLOOP_DATABASE_URL", "sqlite"),
        "turns": args.turns,
        "window": args.window,
    }
    try:
        token = await server.ready()
        await settle(server.proc.pid)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            base_url=server.base + "/", headers=headers, timeout=60
        ) as client:
            providers = (await client.get("v1/providers")).json()["data"]
            llmsim = next(p for p in providers if p["driver"] == "llmsim")
            model = await client.post(
                f"v1/providers/{llmsim['id']}/models",
                json={
                    "model_id": "bench-window",
                    "settings": {"llmsim": SCRIPT},
                    "profile": {"context_window": args.window},
                },
            )
            model.raise_for_status()
            streams = {}
            for name, harness in (("compacted", "generic"), ("full", "base")):
                created = await client.post(
                    "v1/sessions",
                    json={"model_id": model.json()["id"], "harness_name": harness},
                )
                created.raise_for_status()
                streams[name] = SessionStream(client, created.json()["id"])
            await asyncio.sleep(0.5)  # the SSE streams are connected
            series: dict[str, list[tuple[float, int]]] = {name: [] for name in streams}
            cpu_before = cpu_seconds(server.proc.pid)
            for turn in range(1, args.turns + 1):
                for name, stream in streams.items():
                    series[name].append(await one_turn(client, stream, turn))
                if turn % 100 == 0:
                    print(f"turn {turn}/{args.turns}", flush=True)
            cpu = cpu_seconds(server.proc.pid) - cpu_before
            checkpoints = await client.get(
                f"v1/sessions/{streams['compacted'].session_id}/events",
                params={"types": "context.compacted", "limit": 1000},
            )
            for stream in streams.values():
                await stream.close()
        result["checkpoints"] = len(checkpoints.json()["data"])
        result["cpu_ms_per_turn_both_sessions"] = round(cpu * 1000 / args.turns, 2)
        for name, values in series.items():
            result[name] = {
                f"turn_{mark}": {
                    "latency_ms_median_of_9": round(
                        statistics.median(v[0] for v in values[max(0, mark - 9) : mark]), 2
                    ),
                    "prompt_tokens_median_of_9": statistics.median(
                        v[1] for v in values[max(0, mark - 9) : mark]
                    ),
                    "prompt_tokens_max_of_9": max(v[1] for v in values[max(0, mark - 9) : mark]),
                }
                for mark in MARKS
                if mark <= len(values)
            }
    finally:
        server.stop()
    result["load_1min"] = os.getloadavg()[0]
    result["machine"] = f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--window", type=int, default=8000)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
