"""SSE fan-out: many streams on one session, a turn streaming to all of them.

For each subscriber count (default 1, 50, 200) a fresh session gets that many concurrent
`GET .../sse` streams; a warm-up turn makes sure every stream is live, then `--turns` turns
(model -> tool -> model, llmsim) run one after another, each started when every stream has seen
the previous one's `session.idled`. Reported per count:

- delivery delay, p50/p99/max over every (event, stream) pair of the measured turns: the event's
  `ts` (server clock, when it was appended; millisecond precision, truncated, so the figure is
  up to 1 ms high) to the moment the client read the chunk carrying it (same machine's clock).
- spread, p99: an event's arrival on a stream minus its first arrival on any stream (the cost of
  handing one event to N streams, without the append-to-commit time every stream shares).
- database reads per appended event, from the server's own counters
  (`EVERLOOP_DEBUG_COUNTERS=1`, `GET /api/v1/debug/counters`; null for a build without them):
  reads of the streams (shared tail reads, polls included, plus per-stream catch-up reads)
  during the measured turns divided by the events appended in them.
- with `--pg`: a fresh PostgreSQL database per run, and PostgreSQL's own count of scans of the
  `events` table (`pg_stat_user_tables`) per appended event from before the streams connect to
  after they closed (includes the turns' own history reads; works for any build). Statistics
  reach `pg_stat` within 10 s, so each count waits 11 s for idle backends to flush.
- whether every stream got every event exactly once, in order; stream errors (non-200, resets).

The streams are bare asyncio protocol connections (HTTP/1.1, de-chunked by hand), so the client
costs little per event and the delays are mostly the server's; REST calls use httpx.

Usage: python benchmarks/fanout.py [--subscribers 1,50,200] [--turns 10] [--src DIR] [--pg URL]
`--src DIR` runs the server from another checkout (PYTHONPATH), e.g. an unchanged baseline.
Prints progress to stderr and one JSON object to stdout. Talks to 127.0.0.1 only; starts and
stops its own server in a temporary data dir.
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
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from turns import Server, cpu_seconds, percentile

SCRIPT = {
    "response": {"type": "lorem", "tokens": 40},
    "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
    "latency_ms": 20,
    "chunk_chars": 16,
}
TURN_DEADLINE = 180.0
PG_FLUSH_SECONDS = 11.0


class SseProtocol(asyncio.Protocol):
    """A bare HTTP/1.1 SSE reader (a client that holds hundreds of streams cheaply): it
    de-chunks the body and keeps each durable frame (one with an ``id:``) with the arrival time
    of the bytes that completed it; frames are parsed after the run."""

    def __init__(self, request: bytes, stream: Stream) -> None:
        self.request = request
        self.stream = stream
        self.raw = b""
        self.body = b""
        self.headers_done = False
        self.chunk_left = -1  # bytes of the current chunk still to read (+2 for its CRLF)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        received = time.time()
        self.raw += data
        if not self.headers_done:
            head, sep, rest = self.raw.partition(b"\r\n\r\n")
            if not sep:
                return
            status = head.split(b"\r\n", 1)[0]
            if b" 200 " not in status:
                self.stream.fail(f"{status.decode()}: {rest[:200]!r}")
                return
            self.headers_done, self.raw = True, rest
        self._dechunk()
        while b"\r\n\r\n" in self.body:
            frame, self.body = self.body.split(b"\r\n\r\n", 1)
            if b"id: " in frame:
                self.stream.frame(received, frame)

    def _dechunk(self) -> None:
        while True:
            if self.chunk_left < 0:
                line, sep, rest = self.raw.partition(b"\r\n")
                if not sep:
                    return
                self.chunk_left, self.raw = int(line, 16) + 2, rest
                if self.chunk_left == 2:
                    self.stream.fail("the server ended the stream")
                    return
            if len(self.raw) < self.chunk_left:
                return
            self.body += self.raw[: self.chunk_left - 2]
            self.raw = self.raw[self.chunk_left :]
            self.chunk_left = -1

    def connection_lost(self, exc: Exception | None) -> None:
        self.stream.fail(f"connection lost: {exc}")


class Stream:
    """One SSE connection on its own socket."""

    def __init__(self, base: str, token: str, session_id: str, after: int) -> None:
        url = httpx.URL(f"{base}/v1/sessions/{session_id}/sse?after_sequence={after}")
        self.address = (url.host, url.port or 80)
        self.request = (
            f"GET {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        self.frames: list[tuple[float, bytes]] = []
        self.idled = 0
        self.progress = asyncio.Event()
        self.error: str | None = None
        self.closing = False
        self.transport: asyncio.BaseTransport | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_connection(
            lambda: SseProtocol(self.request, self), *self.address
        )

    def frame(self, received: float, frame: bytes) -> None:
        self.frames.append((received, frame))
        if b"event: session.idled" in frame:
            self.idled += 1
            self.progress.set()

    def fail(self, error: str) -> None:
        if self.error is None and not self.closing:
            self.error = error[:200]
        self.progress.set()

    def events(self) -> list[tuple[float, dict[str, Any]]]:
        found = []
        for received, frame in self.frames:
            data = next(x for x in frame.split(b"\r\n") if x.startswith(b"data: "))
            found.append((received, json.loads(data[6:])))
        return found

    async def until_idled(self, count: int) -> None:
        while self.idled < count and self.error is None:
            self.progress.clear()
            await self.progress.wait()
        if self.idled < count:
            raise RuntimeError(f"stream ended early: {self.error}")

    async def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


def stamp(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


async def counters(client: httpx.AsyncClient) -> dict[str, int] | None:
    response = await client.get("v1/debug/counters")
    if response.status_code != 200:
        return None  # a build without the counters
    return dict(response.json()["sse"])


async def last_sequence(client: httpx.AsyncClient, session_id: str) -> int:
    found = (await client.get(f"v1/sessions/{session_id}/events", params={"limit": 1})).json()
    return int(found["data"][-1]["sequence"]) if found["data"] else 0


async def events_table_scans(dsn: str | None) -> int | None:
    if dsn is None:
        return None
    await asyncio.sleep(PG_FLUSH_SECONDS)  # idle backends flush their statistics
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        row = await (
            await conn.execute(
                "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) "
                "FROM pg_stat_user_tables WHERE relname = 'events'"
            )
        ).fetchone()
    return int(row[0]) if row else None


async def one_count(
    client: httpx.AsyncClient,
    server: Server,
    model_id: str,
    subscribers: int,
    turns: int,
    pg_dsn: str | None,
) -> dict[str, Any]:
    created = await client.post(
        "v1/sessions", json={"model_id": model_id, "capabilities": [{"ref": "test_math"}]}
    )
    created.raise_for_status()
    sid = created.json()["id"]
    scans_before = await events_table_scans(pg_dsn)
    start = await last_sequence(client, sid)
    base = str(client.base_url).rstrip("/")
    token = client.headers["Authorization"].removeprefix("Bearer ")
    streams = [Stream(base, token, sid, start) for _ in range(subscribers)]
    await asyncio.gather(*(s.open() for s in streams))

    async def run_turn(number: int, text: str) -> None:
        posted = await client.post(
            f"v1/sessions/{sid}/messages",
            json={"message": {"role": "user", "content": [{"type": "text", "text": text}]}},
        )
        posted.raise_for_status()
        async with asyncio.timeout(TURN_DEADLINE):
            await asyncio.gather(*(s.until_idled(number) for s in streams))

    errors: list[str] = []
    try:
        await run_turn(1, "please add (warm-up)")  # every stream is live after this
        warm = await last_sequence(client, sid)
        before = await counters(client)
        cpu_before = cpu_seconds(server.proc.pid)
        for number in range(2, turns + 2):
            await run_turn(number, f"please add, turn {number}")
            print(f"  {subscribers} streams: turn {number - 1}/{turns}", file=sys.stderr)
        cpu = cpu_seconds(server.proc.pid) - cpu_before
        after = await counters(client)
        end = await last_sequence(client, sid)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}"[:300])
        end = warm = await last_sequence(client, sid)
        before = after = None
        cpu = 0.0
    finally:
        for stream in streams:
            await stream.close()
    scans_after = await events_table_scans(pg_dsn)

    delays: list[float] = []
    by_event: dict[int, tuple[str, list[float]]] = {}
    arrivals: dict[int, list[float]] = {}
    complete = 0
    for stream in streams:
        if stream.error:
            errors.append(stream.error)
        got = stream.events()
        if [e["sequence"] for _, e in got] == list(range(start + 1, end + 1)):
            complete += 1
        for received, e in got:
            if e["sequence"] > warm:
                delay = (received - stamp(e["ts"])) * 1000
                delays.append(delay)
                by_event.setdefault(e["sequence"], (e["type"], []))[1].append(delay)
                arrivals.setdefault(e["sequence"], []).append(received)
    appended = end - warm
    spread = [(t - min(times)) * 1000 for times in arrivals.values() for t in times]
    result: dict[str, Any] = {
        "subscribers": subscribers,
        "events_appended": appended,
        "deliveries": len(delays),
        "delay_p50_ms": round(statistics.median(delays), 1) if delays else None,
        "delay_p99_ms": round(percentile(delays, 0.99), 1) if delays else None,
        "delay_max_ms": round(max(delays), 1) if delays else None,
        "spread_p99_ms": round(percentile(spread, 0.99), 1) if spread else None,
        "streams_complete_in_order": f"{complete}/{subscribers}",
        "errors": len(errors),
        "errors_sample": sorted(set(errors))[:3],
        "server_cpu_ms_per_delivery": round(cpu * 1000 / len(delays), 3) if delays else None,
        "slowest_events": [  # by their median delay over the streams
            f"#{seq} {kind}: {statistics.median(found):.0f} ms"
            for seq, (kind, found) in sorted(
                by_event.items(), key=lambda item: -statistics.median(item[1][1])
            )[:3]
        ],
    }
    if before is not None and after is not None and appended:
        reads = sum(after[k] - before[k] for k in ("tail_reads", "catchup_reads"))
        result.update(
            stream_reads=reads,
            stream_reads_per_event=round(reads / appended, 2),
            tail_reads=after["tail_reads"] - before["tail_reads"],
            catchup_reads=after["catchup_reads"] - before["catchup_reads"],
            overflows=after["overflows"] - before["overflows"],
        )
    else:
        result["stream_reads_per_event"] = None  # the build has no counters
    if scans_before is not None and scans_after is not None:
        total = end - start
        result["pg_events_scans_per_event"] = round((scans_after - scans_before) / total, 2)
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(x) for x in args.subscribers.split(",")]
    data_dir = Path(tempfile.mkdtemp(prefix="everloop-fanout-"))
    env = {"EVERLOOP_DEBUG_COUNTERS": "1"}
    pg_dsn = admin = name = None
    if args.pg:
        name = f"everloop_fanout_{secrets.token_hex(4)}"
        admin = make_url(args.pg).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(args.pg).set(database=name)
        env["EVERLOOP_DATABASE_URL"] = url.render_as_string(hide_password=False)
        pg_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    server = Server(data_dir, extra_env=env, src=args.src)
    log_lines: list[str] = []  # the server's log (warnings and errors), read at the end
    result: dict[str, Any] = {
        "database": "postgresql" if args.pg else "sqlite",
        "src": args.src or "(installed)",
        "turns": args.turns,
        "load_average_before": os.getloadavg()[0],
    }
    try:
        token = await server.ready()
        limits = httpx.Limits(max_connections=max(counts) + 20, max_keepalive_connections=50)
        async with httpx.AsyncClient(
            base_url=server.base + "/",
            headers={"Authorization": f"Bearer {token}"},
            limits=limits,
            timeout=60,
        ) as client:
            providers = (await client.get("v1/providers")).json()["data"]
            llmsim = next(p for p in providers if p["driver"] == "llmsim")
            model = await client.post(
                f"v1/providers/{llmsim['id']}/models",
                json={"model_id": "fanout", "settings": {"llmsim": SCRIPT}},
            )
            model.raise_for_status()
            result["counters_available"] = await counters(client) is not None
            runs = []
            for count in counts:
                figures = await one_count(
                    client, server, model.json()["id"], count, args.turns, pg_dsn
                )
                print(f"  {json.dumps(figures)}", file=sys.stderr)
                runs.append(figures)
            result["runs"] = runs
    finally:
        log_lines = server.log_tail(limit=None).splitlines(keepends=True)
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        if admin and name:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    result.update(
        server_log="".join(log_lines),
        server_log_lines=len(log_lines),
        server_log_sample=[line.strip()[:200] for line in log_lines if "Traceback" not in line][:3],
        load_average_after=os.getloadavg()[0],
        machine=f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        date=datetime.now().astimezone().isoformat(timespec="seconds"),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="1,50,200", help="comma-separated counts")
    parser.add_argument("--turns", type=int, default=10, help="measured turns per count")
    parser.add_argument(
        "--src", default=None, help="run the server from this source dir (another checkout)"
    )
    parser.add_argument(
        "--pg",
        default=None,
        help="PostgreSQL server URL (postgresql+psycopg://postgres@127.0.0.1/postgres): "
        "run on a fresh database there instead of SQLite",
    )
    parser.add_argument("--log", default=None, help="write the server's stderr to this file")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    log = result.pop("server_log")
    if args.log:
        Path(args.log).write_text(log)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
