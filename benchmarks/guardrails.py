"""What `output` guardrails cost (issue 21): server CPU per turn of a 2,000-delta answer, with and
without a `guardrails` capability, side by side on one real `everloop serve` (SQLite unless
EVERLOOP_DATABASE_URL says otherwise).

Two sessions on one llmsim model answering `lorem` text of 16,000 characters in 8-character
deltas (2,000 deltas): `guarded` has a guardrails config of two blocklists and four regexes on
`output` (the secret, card-number and email patterns of the presets; none matches lorem, so every
turn streams its whole answer through the checks), `plain` has none. Turns alternate between the
two in blocks of `--block` turns (so drift in the machine's load hits both alike); the server's
CPU is read from /proc/<pid>/stat around each block (its clock ticks are 10 ms: a single turn is
too short to read). Reported: the CPU per turn of each (median and mean over the blocks) and the
overhead. The machine's other load makes that difference noisy at this size, so the guard's own
work on the same 2,000 deltas (feed each, then finish and evaluate, as `engine.model_call` does)
is also timed in this process (`time.process_time`, 200 answers) and set against the plain turn.

Usage: python -m benchmarks.guardrails [--blocks 12] [--block 10]
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

from everloop.capabilities.guardrail_presets import PRESETS
from everloop.capabilities.guardrails import parse_policy
from everloop.engine.guardrails import OutputGuard
from everloop.llm.llmsim import _LOREM

ANSWER_CHARS = 16_000
CHUNK_CHARS = 8  # 2,000 deltas
SCRIPT = {"response": {"type": "lorem", "tokens": ANSWER_CHARS // 4}, "chunk_chars": CHUNK_CHARS}


def guard_config() -> dict[str, Any]:
    """Blocklists and regexes on output, taken from the presets (none matches lorem ipsum)."""
    by_name = {p.name: p.config for p in PRESETS}
    checks: list[Any] = [
        *by_name["profanity"]["checks"],  # type: ignore[misc]
        {"id": "competitors", "type": "blocklist", "words": ["acme", "globex", "initech"]},
        *by_name["secret-detection"]["checks"],  # type: ignore[misc]
        *by_name["pii"]["checks"],  # type: ignore[misc]
    ]
    return {"mode": "enforce", "checks": checks}


def guard_cpu_ms() -> dict[str, float]:
    """CPU ms per answer of the output guard alone, with and without the config."""
    text = (_LOREM * (ANSWER_CHARS // len(_LOREM) + 1))[:ANSWER_CHARS]
    pieces = [text[i : i + CHUNK_CHARS] for i in range(0, ANSWER_CHARS, CHUNK_CHARS)]
    policy = parse_policy(guard_config())
    found = {}
    for name, chosen in (("none", None), ("guarded", policy)):
        started = time.process_time()
        for _ in range(200):
            guard = OutputGuard(chosen)
            for piece in pieces:
                guard.feed(piece)
            guard.finish()
            _, blocked = guard.outcome(text)
            assert blocked is None
        found[name] = round((time.process_time() - started) / 200 * 1000, 3)
    return found


async def block(client: httpx.AsyncClient, stream: SessionStream, pid: int, turns: int) -> float:
    """The server CPU seconds per turn over ``turns`` turns in a row (each: message posted to
    its turn.completed seen)."""
    before = cpu_seconds(pid)
    for n in range(turns):
        posted = await client.post(
            f"v1/sessions/{stream.session_id}/messages",
            json={"message": {"role": "user", "content": [{"type": "text", "text": f"go {n}"}]}},
        )
        posted.raise_for_status()
        await stream.completed(posted.json()["turn_id"])
    return (cpu_seconds(pid) - before) / turns


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="everloop-bench-"))
    server = Server(data_dir)
    result: dict[str, Any] = {
        "database": os.environ.get("EVERLOOP_DATABASE_URL", "sqlite"),
        "turns_each": args.blocks * args.block,
        "answer_chars": ANSWER_CHARS,
        "deltas_per_answer": ANSWER_CHARS // CHUNK_CHARS,
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
                json={"model_id": "bench-guard", "settings": {"llmsim": SCRIPT}},
            )
            model.raise_for_status()
            variants = {
                "plain": [],
                "guarded": [{"ref": "guardrails", "config": guard_config()}],
            }
            streams = {}
            for name, capabilities in variants.items():
                created = await client.post(
                    "v1/sessions",
                    json={"model_id": model.json()["id"], "capabilities": capabilities},
                )
                created.raise_for_status()
                streams[name] = SessionStream(client, created.json()["id"])
            await asyncio.sleep(0.5)  # the SSE streams are connected
            pid = server.proc.pid
            for stream in streams.values():  # warm-up
                await block(client, stream, pid, 3)
            await settle(pid)
            cpu: dict[str, list[float]] = {name: [] for name in streams}
            for n in range(args.blocks):
                order = list(streams) if n % 2 == 0 else list(reversed(streams))
                for name in order:
                    cpu[name].append(await block(client, streams[name], pid, args.block))
            for stream in streams.values():
                await stream.close()
        for name, values in cpu.items():
            result[f"{name}_cpu_ms_per_turn_median"] = round(statistics.median(values) * 1000, 1)
            result[f"{name}_cpu_ms_per_turn_mean"] = round(statistics.mean(values) * 1000, 1)
        plain = statistics.median(cpu["plain"])
        result["overhead_percent_median"] = round(
            (statistics.median(cpu["guarded"]) - plain) / plain * 100, 1
        )
        mean_plain = statistics.mean(cpu["plain"])
        result["overhead_percent_mean"] = round(
            (statistics.mean(cpu["guarded"]) - mean_plain) / mean_plain * 100, 1
        )
    finally:
        server.stop()
    guard = guard_cpu_ms()
    result["guard_alone_cpu_ms_per_answer"] = guard
    added = guard["guarded"] - guard["none"]
    result["guard_alone_overhead_percent_of_plain_turn"] = round(
        added / result["plain_cpu_ms_per_turn_mean"] * 100, 2
    )
    result["load_1min"] = os.getloadavg()[0]
    result["machine"] = f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--block", type=int, default=10)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
