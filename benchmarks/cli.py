"""How long the `everloop` commands people type take, hyperfine-style (issue 23).

Each command runs --runs times as a new process (after --warmup runs not counted); the wall
time of each run is measured from spawn to exit, and the mean, standard deviation, min and
max are printed as a Markdown table. Commands:

- `--help`, `--version`: nothing but the command line (no database, no HTTP);
- `token ls`, `token create`: straight on the data dir's database (SQLite), no server needed;
- `status`, `sessions ls`, `models ls`: HTTP against an `everloop serve` this script starts.

Usage: python benchmarks/cli.py [--runs 20] [--warmup 2]
Talks to 127.0.0.1 only; starts and stops its own server in a temporary directory.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from everloop.cli.output import progress


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def everloop() -> str:
    return shutil.which("everloop", path=str(Path(sys.executable).parent)) or "everloop"


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
        env.update(
            EVERLOOP_DATA_DIR=str(data_dir),
            EVERLOOP_URL=f"http://127.0.0.1:{port}",
            COLUMNS="120",
        )
        with (Path(tmp) / "serve.log").open("wb") as log:
            server = subprocess.Popen(
                [everloop(), "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not get ready in 60 s")
                time.sleep(0.05)
            commands = [
                ["--help"],
                ["--version"],
                ["token", "ls"],
                ["token", "create", "--name", "bench"],
                ["status"],
                ["sessions", "ls"],
                ["models", "ls"],
            ]
            rows = []
            total = len(commands) * (args.warmup + args.runs)
            with progress("running commands", total) as advance:  # on a terminal only
                for command in commands:
                    argv = [everloop(), *command]
                    for _ in range(args.warmup):
                        timed(argv, env)
                        advance(1)
                    times = []
                    for _ in range(args.runs):
                        times.append(timed(argv, env))
                        advance(1)
                    rows.append((command, times))
        finally:
            server.terminate()
            server.wait(timeout=30)

    load = os.getloadavg()[0]
    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), 1-minute load {load:.1f}, "
        f"{args.runs} runs after {args.warmup} warm-up\n"
    )
    print("| command | mean ± sd | min | max |")
    print("|---|---|---|---|")
    for command, times in rows:
        mean, spread = statistics.mean(times), statistics.stdev(times)
        print(
            f"| `everloop {' '.join(command)}` | {mean * 1000:.0f} ± {spread * 1000:.0f} ms "
            f"| {min(times) * 1000:.0f} ms | {max(times) * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
