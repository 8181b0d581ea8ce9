"""Scale-out throughput on PostgreSQL: the turns benchmark's W2 with 1 and with 2 workers.

One `everloop api` process and 1, then 2, `everloop worker` processes on a fresh PostgreSQL
database each run; 32 sessions x 10 turns (one tool call per turn, llmsim without latency),
sessions concurrently. Reports turns/s for each and the ratio.

Usage: python benchmarks/scale_out.py [--pg postgresql+psycopg://postgres@127.0.0.1/postgres]
Talks to 127.0.0.1 only; starts and stops its own processes and databases.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from turns import SessionStream, free_port, setup, turn


def start(role: str, data_dir: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    exe = shutil.which("everloop", path=str(Path(sys.executable).parent)) or "everloop"
    return subprocess.Popen(
        [exe, role, "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data_dir.parent / f"{data_dir.name}.log").open("wb"),
    )


async def wait_http(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(url)


async def run_once(pg: str, workers: int, sessions: int, turns_each: int) -> dict[str, Any]:
    name = f"everloop_bench_{secrets.token_hex(4)}"
    admin = make_url(pg).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    root = Path(tempfile.mkdtemp(prefix="everloop-scale-"))
    procs: list[subprocess.Popen[bytes]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
    env.update(
        EVERLOOP_DATABASE_URL=make_url(pg).set(database=name).render_as_string(hide_password=False),
        EVERLOOP_SECRET_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        EVERLOOP_LOG_LEVEL="WARNING",
        EVERLOOP_QUEUE_POLL_SECONDS="0.02",
    )
    try:
        api_port = free_port()
        procs.append(start("api", root / "api", api_port, env))
        await wait_http(f"http://127.0.0.1:{api_port}/healthz")
        for i in range(workers):
            port = free_port()
            procs.append(
                start("worker", root / f"w{i}", port, {**env, "EVERLOOP_EXECUTOR_ID": f"w{i}"})
            )
            await wait_http(f"http://127.0.0.1:{port}/healthz")
        token = (root / "api" / "admin-token").read_text().strip()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}/api/",
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=200),
            timeout=60,
        ) as client:
            ids = await setup(client, sessions)
            streams = [SessionStream(client, sid) for sid in ids]
            await turn(client, streams[0], "add warm-up")

            async def drive(stream: SessionStream) -> None:
                for i in range(turns_each):
                    await turn(client, stream, f"add {i}")

            started = time.perf_counter()
            await asyncio.gather(*(drive(s) for s in streams))
            elapsed = time.perf_counter() - started
            for stream in streams:
                await stream.close()
        total = sessions * turns_each
        return {
            "workers": workers,
            "turns": total,
            "seconds": round(elapsed, 2),
            "turns_per_second": round(total / elapsed, 1),
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if os.environ.get("KEEP"):
            print(root, file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main(args: argparse.Namespace) -> None:
    one = await run_once(args.pg, 1, args.sessions, args.turns)
    print(f"  1 worker: {one['turns_per_second']} turns/s", file=sys.stderr)
    two = await run_once(args.pg, 2, args.sessions, args.turns)
    print(f"  2 workers: {two['turns_per_second']} turns/s", file=sys.stderr)
    print(
        json.dumps(
            {
                "one_worker": one,
                "two_workers": two,
                "ratio": round(two["turns_per_second"] / one["turns_per_second"], 2),
                "load_average": os.getloadavg(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1/postgres")
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--turns", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
