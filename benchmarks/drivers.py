"""Per-call overhead of everloop's model drivers against the raw SDK call, side by side.

Starts `everloop llmsim` (a subprocess on 127.0.0.1) and, for each wire API (`openai`
Responses, `openai_completions` Chat Completions, `anthropic` Messages), times N streamed calls
through our driver (`driver.stream(request)` drained: request conversion, delta events, tool-call
and usage accounting) and N raw SDK calls (`create(stream=True)` with the same, prebuilt keyword
arguments, events drained and ignored). Both use the same SDK client and connection pool; the
two kinds alternate call by call (ABAB, then BABA) so load changes hit both alike. Reports
p50/mean per kind and the ratio of the medians (aim <= 1.2).

Usage: python benchmarks/drivers.py [--calls 300] [--warmup 30] [--wait-load 1.5]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from everloop.domain.messages import Message, TextPart
from everloop.egress import EgressGuard
from everloop.llm.base import ModelRequest, ToolSpec
from everloop.llm.clients import SdkDrivers
from everloop.llm.options import DriverOptions, Endpoint, SdkDriverKind

KINDS: tuple[SdkDriverKind, ...] = ("openai", "openai_completions", "anthropic")
TEXT = "Summarise the plan in a few sentences. " * 8  # ~300 characters: ~20 deltas back
TOOLS = (ToolSpec("get_current_time", "The time now.", {"type": "object", "properties": {}}),)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_average() -> float:
    return os.getloadavg()[0]


def wait_for_load(limit: float, patience: float = 600.0) -> None:
    deadline = time.monotonic() + patience
    while load_average() >= limit and time.monotonic() < deadline:
        print(f"load {load_average():.2f} >= {limit}: waiting...", file=sys.stderr)
        time.sleep(15)


def start_llmsim(port: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("everloop", path=str(Path(sys.executable).parent)) or "everloop"
    proc = subprocess.Popen(
        [exe, "llmsim", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models")
            return proc
        except httpx.ConnectError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("llmsim did not start")


def raw_call(drivers: SdkDrivers, kind: SdkDriverKind, endpoint: Endpoint, body: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The same request as a hand-written SDK call: prebuilt kwargs, events drained."""
    if kind == "anthropic":
        anthropic_client = drivers.anthropic_client(endpoint, 60.0)

        async def call_anthropic() -> None:
            async with await anthropic_client.messages.create(**body) as events:
                async for _event in events:
                    pass

        return call_anthropic
    openai_client = drivers.openai_client(endpoint, 60.0)
    create = (
        openai_client.responses.create
        if kind == "openai"
        else openai_client.chat.completions.create
    )

    async def call_openai() -> None:
        async with await create(**body) as events:
            async for _event in events:
                pass

    return call_openai


async def measure(kind: SdkDriverKind, base: str, calls: int, warmup: int) -> dict[str, Any]:
    # llmsim listens on loopback, which the egress guard refuses unless the operator allows it.
    drivers = SdkDrivers(
        EgressGuard(allowed_private_networks=[ipaddress.ip_network("127.0.0.0/8")])
    )
    endpoint = Endpoint(base if kind == "anthropic" else base + "/v1", "sk-bench")
    driver: Any = drivers.build(kind, "bench", endpoint, DriverOptions(timeout_seconds=60.0))
    request = ModelRequest(
        model="bench",
        system_prompt="You are terse.",
        messages=(Message("m1", "user", (TextPart(TEXT),)),),
        tools=TOOLS,
    )
    body = driver.request_body(request)

    async def ours() -> None:
        async for _event in driver.stream(request):
            pass

    theirs: Callable[[], Awaitable[None]] = raw_call(drivers, kind, endpoint, body)
    timings: dict[str, list[float]] = {"driver": [], "sdk": []}
    for i in range(warmup + calls):
        pair = [("driver", ours), ("sdk", theirs)]
        if i % 2:
            pair.reverse()
        for name, fn in pair:
            started = time.perf_counter()
            await fn()
            elapsed = time.perf_counter() - started
            if i >= warmup:
                timings[name].append(elapsed)
    await drivers.aclose()
    p50 = {k: statistics.median(v) for k, v in timings.items()}
    mean = {k: statistics.fmean(v) for k, v in timings.items()}
    return {
        "kind": kind,
        "p50": p50,
        "mean": mean,
        "ratio": p50["driver"] / p50["sdk"],
        "overhead_us": (p50["driver"] - p50["sdk"]) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--wait-load", type=float, default=1.5)
    args = parser.parse_args()
    wait_for_load(args.wait_load)
    port = free_port()
    proc = start_llmsim(port)
    load_before = load_average()
    try:
        results = [
            asyncio.run(measure(kind, f"http://127.0.0.1:{port}", args.calls, args.warmup))
            for kind in KINDS
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    load_after = load_average()
    print(f"date: {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    print(f"calls per kind: {args.calls} (after {args.warmup} warm-up), alternating")
    print("| wire API | driver p50 | raw SDK p50 | driver mean | raw SDK mean | ratio (p50) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['kind']} | {r['p50']['driver'] * 1e3:.2f} ms | {r['p50']['sdk'] * 1e3:.2f} ms"
            f" | {r['mean']['driver'] * 1e3:.2f} ms | {r['mean']['sdk'] * 1e3:.2f} ms"
            f" | {r['ratio']:.3f} ({r['overhead_us']:+.0f} us) |"
        )


if __name__ == "__main__":
    main()
