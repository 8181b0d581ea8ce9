"""Turn latency and throughput of a real `everloop serve` (SQLite, llmsim with no latency).

Each turn makes one tool call (model -> tool -> model). Timings are taken by the client:
from sending `POST .../messages` to seeing that turn's `turn.completed` on the session's SSE
stream.

- W1: 200 sequential turns on one session; p50/p99 latency.
- W2: 32 sessions x 10 turns, sessions concurrently (each sends its next message when its
  previous turn completed); turns per second.

Usage: python benchmarks/turns.py [--w1-turns 200] [--sessions 32] [--turns 10]
Talks to 127.0.0.1 only; starts and stops its own server in a temporary data dir.

``--telemetry full``: the server runs with everything an operator turns on (issue 24): traces
exported with OTLP/HTTP to a sink in this process (``OTEL_EXPORTER_OTLP_ENDPOINT``), logs at
INFO (an access line per request, a line per turn) and ``/metrics`` scraped every
``--scrape-seconds`` (15);
``--telemetry logs``: the same without traces; ``--telemetry sampled``: full, keeping one trace
in ten (``EVERLOOP_TRACE_SAMPLE_RATIO=0.1``). ``--compare SRC`` runs SRC's code (e.g. main's
``src``: no telemetry at all), then this checkout with telemetry off, logs, sampled and full,
one after another, ``--rounds`` times; ``--levels off,full`` alternates the levels named (with
``--compare``, after SRC).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

SCRIPT = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(
        self, data_dir: Path, extra_env: dict[str, str] | None = None, src: str | None = None
    ) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.base = f"http://127.0.0.1:{self.port}/api"
        exe = shutil.which("everloop", path=str(Path(sys.executable).parent)) or "everloop"
        env = {**os.environ, "EVERLOOP_LOG_LEVEL": "WARNING", **(extra_env or {})}
        if src:  # measure another checkout's code (e.g. the previous commit) side by side
            env["PYTHONPATH"] = src
        # The server's log goes to a file (a pipe nobody reads could fill and stall it).
        self.log = (data_dir.parent / f"{data_dir.name}.log").open("wb")
        self.proc = subprocess.Popen(
            [exe, "serve", "--data-dir", str(data_dir), "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    async def ready(self) -> str:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.log_tail())
                try:
                    if (
                        await client.get(f"http://127.0.0.1:{self.port}/healthz")
                    ).status_code == 200:
                        return (self.data_dir / "admin-token").read_text().strip()
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError("server did not start")

    def log_tail(self, limit: int | None = 4000) -> str:
        """The end of the server's log (all of it with ``limit=None``)."""
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace")
        return text if limit is None else text[-limit:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


class SessionStream:
    """One SSE connection per session; resolves a future per turn id on `turn.completed`."""

    def __init__(self, client: httpx.AsyncClient, session_id: str) -> None:
        self.client = client
        self.session_id = session_id
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.done: dict[str, float] = {}
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        url = f"v1/sessions/{self.session_id}/sse"
        params = {"types": ["turn.completed", "turn.failed"]}
        async with self.client.stream("GET", url, params=params, timeout=None) as response:
            event_type = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event_type = line[6:].strip()
                elif line.startswith("data:") and event_type.startswith("turn."):
                    seen = time.perf_counter()
                    data = json.loads(line[5:])
                    turn_id = data["data"]["turn_id"]
                    if event_type == "turn.failed":
                        raise RuntimeError(f"turn failed: {data['data']}")
                    self.done[turn_id] = seen
                    future = self.waiting.pop(turn_id, None)
                    if future is not None and not future.done():
                        future.set_result(seen)

    async def completed(self, turn_id: str) -> float:
        if turn_id in self.done:
            return self.done[turn_id]
        future = asyncio.get_running_loop().create_future()
        self.waiting[turn_id] = future
        return await asyncio.wait_for(future, timeout=60)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def setup(client: httpx.AsyncClient, count: int) -> list[str]:
    providers = (await client.get("v1/providers")).json()["data"]
    llmsim = next(p for p in providers if p["driver"] == "llmsim")
    model = await client.post(
        f"v1/providers/{llmsim['id']}/models",
        json={"model_id": "bench", "settings": {"llmsim": SCRIPT}},
    )
    model.raise_for_status()
    sessions = []
    for _ in range(count):
        created = await client.post(
            "v1/sessions",
            json={"model_id": model.json()["id"], "capabilities": [{"ref": "test_math"}]},
        )
        created.raise_for_status()
        sessions.append(created.json()["id"])
    return sessions


POST_MS: list[float] = []  # every message POST's latency, request sent to response read


async def turn(client: httpx.AsyncClient, stream: SessionStream, text: str) -> float:
    started = time.perf_counter()
    posted = await client.post(
        f"v1/sessions/{stream.session_id}/messages",
        json={"message": {"role": "user", "content": [{"type": "text", "text": text}]}},
    )
    POST_MS.append((time.perf_counter() - started) * 1000)
    posted.raise_for_status()
    finished = await stream.completed(posted.json()["turn_id"])
    return (finished - started) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def settle(pid: int, seconds: float = 20.0) -> None:
    """Wait (bounded) until the server is idle: right after it is ready it still loads the
    model SDKs in a background thread, which must not count as turn CPU."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(pid) - before < 0.02:
            return


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts every export and keeps a count of bytes."""

    received = 0

    def do_POST(self) -> None:
        _Sink.received += len(self.rfile.read(int(self.headers.get("content-length", "0"))))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def scrape_metrics(
    client: httpx.AsyncClient, port: int, stop: asyncio.Event, every: float = 15.0
) -> int:
    """``GET /metrics`` every ``every`` seconds (Prometheus scrapes every 60 s by default; 15 s
    is the interval of its example configuration and a common choice) until ``stop``."""
    scrapes = 0
    while not stop.is_set():
        (await client.get(f"http://127.0.0.1:{port}/metrics")).raise_for_status()
        scrapes += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    return scrapes


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="everloop-bench-"))
    env: dict[str, str] = {}
    sink: ThreadingHTTPServer | None = None
    if args.telemetry == "sampled":
        env["EVERLOOP_TRACE_SAMPLE_RATIO"] = "0.1"
    if args.telemetry in ("full", "sampled"):
        _Sink.received = 0
        sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink.server_address[1]}"
    if args.telemetry != "off":
        env["EVERLOOP_LOG_LEVEL"] = "INFO"
    server = Server(data_dir, env, src=args.src)
    result: dict[str, Any] = {
        "database": os.environ.get("EVERLOOP_DATABASE_URL", "sqlite"),
        "code": args.src or "this checkout",
        "telemetry": args.telemetry,
    }
    stop_scraping = asyncio.Event()
    scraper: asyncio.Task[int] | None = None
    try:
        token = await server.ready()
        # Idle connections expire before the server's 5 s keep-alive timeout closes them.
        limits = httpx.Limits(
            max_connections=400, max_keepalive_connections=300, keepalive_expiry=2.0
        )
        # The request timeout of the published everruns-sdk client (30 s).
        async with httpx.AsyncClient(
            base_url=server.base + "/",
            headers={"Authorization": f"Bearer {token}"},
            limits=limits,
            timeout=30.0,
        ) as client:
            sessions = await setup(client, 1 + args.sessions)
            if args.telemetry != "off":
                scraper = asyncio.create_task(
                    scrape_metrics(client, server.port, stop_scraping, args.scrape_seconds)
                )
            await settle(server.proc.pid)
            if args.w1_turns:
                w1_stream = SessionStream(client, sessions[0])
                for i in range(5):  # warm-up
                    await turn(client, w1_stream, f"add warm {i}")
                await settle(server.proc.pid)
                latencies = []
                cpu_before = cpu_seconds(server.proc.pid)
                for i in range(args.w1_turns):
                    latencies.append(await turn(client, w1_stream, f"add {i}"))
                    if (i + 1) % 50 == 0:
                        print(f"  W1: {i + 1}/{args.w1_turns} turns", file=sys.stderr)
                cpu_w1 = cpu_seconds(server.proc.pid) - cpu_before
                await w1_stream.close()
                edge = min(20, len(latencies))
                result.update(
                    w1_turns=args.w1_turns,
                    w1_p50_ms=round(statistics.median(latencies), 1),
                    w1_p99_ms=round(percentile(latencies, 0.99), 1),
                    w1_mean_ms=round(statistics.fmean(latencies), 1),
                    w1_first20_p50_ms=round(statistics.median(latencies[:edge]), 1),
                    w1_last20_p50_ms=round(statistics.median(latencies[-edge:]), 1),
                    w1_server_cpu_ms_per_turn=round(cpu_w1 * 1000 / args.w1_turns, 1),
                )

            streams = [SessionStream(client, sid) for sid in sessions[1:]]
            await settle(server.proc.pid)
            failures: list[str] = []

            async def drive(stream: SessionStream) -> None:
                for i in range(args.turns):
                    try:
                        await turn(client, stream, f"add {i}")
                    except Exception as exc:  # counted, not fatal: the figure is failed turns
                        failures.append(f"{type(exc).__name__}: {exc}"[:200])

            cpu_before = cpu_seconds(server.proc.pid)
            POST_MS.clear()
            started = time.perf_counter()
            await asyncio.gather(*(drive(s) for s in streams))
            elapsed = time.perf_counter() - started
            cpu_w2 = cpu_seconds(server.proc.pid) - cpu_before
            for stream in streams:
                await stream.close()
            if scraper is not None:
                stop_scraping.set()
                result["metrics_scrapes"] = await scraper
        if sink is not None:
            result["otlp_bytes_received"] = _Sink.received
        total = args.sessions * args.turns
        result.update(
            w2_sessions=args.sessions,
            w2_turns=total,
            w2_failed_turns=len(failures),
            w2_failures_sample=sorted(set(failures))[:3],
            w2_seconds=round(elapsed, 2),
            w2_turns_per_second=round((total - len(failures)) / elapsed, 1),
            w2_server_cpu_ms_per_turn=round(cpu_w2 * 1000 / total, 1),
            w2_post_p50_ms=round(statistics.median(POST_MS), 1) if POST_MS else None,
            w2_post_p99_ms=round(percentile(POST_MS, 0.99), 1) if POST_MS else None,
            machine=(
                f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
            ),
            load_average=os.getloadavg()[0],
        )
        return result
    finally:
        server.stop()
        if sink is not None:
            sink.shutdown()
            sink.server_close()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--w1-turns", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument(
        "--src", default=None, help="run the server from this source dir (another checkout)"
    )
    parser.add_argument("--telemetry", choices=("off", "logs", "sampled", "full"), default="off")
    parser.add_argument("--compare", default=None, metavar="SRC", help="SRC, then each level")
    parser.add_argument(
        "--levels",
        default=None,
        help="comma-separated telemetry levels to alternate, --rounds times (e.g. off,full)",
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--scrape-seconds", type=float, default=15.0, help="/metrics scrape interval (logs, full)"
    )
    args = parser.parse_args()
    if args.compare is None and args.levels is None:
        print(json.dumps(asyncio.run(run(args)), indent=2))
        return
    results = []
    levels = (args.levels or "off,logs,sampled,full").split(",")
    variants = [(args.compare, "off")] if args.compare else []
    variants += [(None, t) for t in levels]
    for _ in range(args.rounds):
        for src, telemetry in variants:
            variant = argparse.Namespace(**{**vars(args), "src": src, "telemetry": telemetry})
            results.append(asyncio.run(run(variant)))
            print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
