"""Start-up time of `everloop serve` and `everloop token create` (SQLite by default).

- serve, fresh: a new data dir each run; wall time from starting the process to the first
  `GET /healthz` 200 (and the CPU time the process had used by then), then on to the first
  `GET /readyz` 200 (services built, durable engine launched).
- serve, existing: the same, restarting on a data dir that a previous serve already set up.
- token create: `everloop token create` on that existing data dir, with no server running and
  then while one serves it (once the server is idle); wall and CPU time of the process. Every
  token minted while serving is checked to authenticate against that server.

Each figure is the median and the max over --runs runs. /healthz and /readyz are polled every
10 ms, so figures are good to about 10 ms. CPU times hardly depend on the load of the machine;
wall times do.

Usage: python benchmarks/startup.py [--runs 5] [--src DIR] [--compare DIR] [--pg URL]
--src runs the child processes on another checkout's code (PYTHONPATH=DIR); --compare measures
another checkout too (repeatable), runs alternating between them so all see the same load
(e.g. --compare /path/to/baseline/src). --pg (postgresql+psycopg://user@127.0.0.1/db) measures
PostgreSQL instead: each fresh run gets a new database, dropped afterwards.
Talks to 127.0.0.1 only; starts and stops its own processes in a temporary directory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

POLL_SECONDS = 0.01
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def everloop() -> str:
    return shutil.which("everloop", path=str(Path(sys.executable).parent)) or "everloop"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_env(src: str | None, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
    env["EVERLOOP_LOG_LEVEL"] = "WARNING"
    if database_url:
        env["EVERLOOP_DATABASE_URL"] = database_url
    if src:  # measure another checkout's code (e.g. the unchanged baseline) side by side
        env["PYTHONPATH"] = src
    return env


def wait_status(
    client: httpx.Client, url: str, proc: subprocess.Popen[bytes], deadline: float
) -> float:
    """Poll ``url`` until it answers 200; the monotonic time it did."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if client.get(url).status_code == 200:
                return time.monotonic()
        except httpx.TransportError:
            pass
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"no 200 from {url} within {START_TIMEOUT}s")


class Serve:
    """One `everloop serve`; ``healthz_s`` and ``readyz_s`` are seconds from its start."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log = (data_dir.parent / f"{data_dir.name}.log").open("ab")
        base = f"http://127.0.0.1:{self.port}"
        data_arg = ["--data-dir", str(data_dir)]
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [everloop(), "serve", "--host", "127.0.0.1", "--port", str(self.port), *data_arg],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = started + START_TIMEOUT
            with httpx.Client(timeout=5) as client:
                healthy = wait_status(client, f"{base}/healthz", self.proc, deadline)
                self.healthz_cpu_s = cpu_seconds(self.proc.pid)
                self.token_at_healthz = (data_dir / "admin-token").exists()
                ready = wait_status(client, f"{base}/readyz", self.proc, deadline)
        except BaseException:
            self.stop()
            raise
        self.healthz_s = healthy - started
        self.readyz_s = ready - started
        self.api = f"{base}/api"

    def wait_idle(self) -> None:
        """Wait (at most 30 s) until the server uses under 5 % of a core: after it is ready it
        still imports the model SDKs in a thread for a second or so."""
        before = cpu_seconds(self.proc.pid)
        for _ in range(150):
            time.sleep(0.2)
            now = cpu_seconds(self.proc.pid)
            if now - before < 0.01:
                return
            before = now

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def token_create(data_dir: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU seconds of one `everloop token create`, and the token it printed."""
    args = ["create", "--name", f"bench-{secrets.token_hex(3)}", "--data-dir", str(data_dir)]
    cpu_before = children_cpu_seconds()
    started = time.monotonic()
    done = subprocess.run(
        [everloop(), "token", *args],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    cpu = children_cpu_seconds() - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"token create failed: {done.stderr.decode()[-2000:]}")
    return elapsed, cpu, done.stdout.decode().strip().splitlines()[-1]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(values), 3),
        "max_s": round(max(values), 3),
        "runs": [round(v, 3) for v in values],
    }


@contextmanager
def pg_databases(pg: str | None) -> Iterator[Any]:
    """``new()`` gives the URL of a new PostgreSQL database (None without --pg); all are
    dropped on exit."""
    made: list[str] = []

    def admin() -> str:
        from sqlalchemy.engine import make_url

        assert pg is not None
        return make_url(pg).set(drivername="postgresql").render_as_string(hide_password=False)

    def new() -> str | None:
        if pg is None:
            return None
        import psycopg
        from sqlalchemy.engine import make_url

        name = f"everloop_startup_{secrets.token_hex(4)}"
        with psycopg.connect(admin(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return str(make_url(pg).set(database=name).render_as_string(hide_password=False))

    try:
        yield new
    finally:
        if made:
            import psycopg

            with psycopg.connect(admin(), autocommit=True) as conn:
                for name in made:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Subject:
    """One checkout under measurement: its environment, data dirs and figures."""

    def __init__(self, src: str | None, root: Path) -> None:
        self.src = src
        self.label = src or os.environ.get("PYTHONPATH") or "installed"
        self.root = root
        root.mkdir()
        self.figures: dict[str, list[float]] = defaultdict(list)
        self.env: dict[str, str] = {}
        self.data_dir = root

    def serve(self, data_dir: Path, kind: str) -> Serve:
        server = Serve(data_dir, self.env)
        server.stop()
        self.figures[f"serve_{kind}_healthz"].append(server.healthz_s)
        self.figures[f"serve_{kind}_healthz_cpu"].append(server.healthz_cpu_s)
        self.figures[f"serve_{kind}_readyz"].append(server.readyz_s)
        print(
            f"  {self.label}: serve {kind}: /healthz {server.healthz_s:.2f}s "
            f"(cpu {server.healthz_cpu_s:.2f}s), /readyz {server.readyz_s:.2f}s",
            file=sys.stderr,
        )
        return server

    def token(self, kind: str) -> str:
        elapsed, cpu, token = token_create(self.data_dir, self.env)
        self.figures[kind].append(elapsed)
        self.figures[f"{kind}_cpu"].append(cpu)
        print(f"  {self.label}: {kind.replace('_', ' ')}: {elapsed:.2f}s", file=sys.stderr)
        return token

    def report(self) -> dict[str, Any]:
        return {"src": self.label, **{k: summary(v) for k, v in self.figures.items()}}


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="everloop-startup-"))
    load_before = os.getloadavg()
    sources = [args.src, *(args.compare or [])]
    subjects = [Subject(src, root / f"subject{n}") for n, src in enumerate(sources)]
    try:
        with pg_databases(args.pg) as new_database:
            # One start each that is not measured: it compiles the bytecode and warms the OS
            # file cache. Then runs alternate between subjects, so changes of load hit all alike.
            for subject in subjects:
                subject.env = child_env(subject.src, new_database())
                Serve(subject.root / "warm-up", subject.env).stop()
            for i in range(args.runs):
                for subject in subjects:
                    subject.env = child_env(subject.src, new_database())
                    subject.data_dir = subject.root / f"fresh{i}"
                    server = subject.serve(subject.data_dir, "fresh")
                    if not server.token_at_healthz:
                        raise RuntimeError("/healthz answered before the admin token was written")
            # The last fresh data dir of each is now an existing one.
            for _ in range(args.runs):
                for subject in subjects:
                    subject.serve(subject.data_dir, "existing")
            for _ in range(args.runs):
                for subject in subjects:
                    subject.token("token_create")
            for subject in subjects:
                server = Serve(subject.data_dir, subject.env)
                try:
                    server.wait_idle()
                    tokens = [subject.token("token_create_while_serving") for _ in range(args.runs)]
                    for token in tokens:
                        checked = httpx.get(
                            f"{server.api}/v1/sessions",
                            headers={"Authorization": f"Bearer {token}"},
                            timeout=30,
                        )
                        if checked.status_code != 200:
                            raise RuntimeError(f"a minted token does not authenticate: {checked}")
                finally:
                    server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()
    return {
        "benchmark": "startup",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "database": "postgresql" if args.pg else "sqlite",
        "runs": args.runs,
        "results": [subject.report() for subject in subjects],
        "load_average_1m": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "machine": {
            "nproc": os.cpu_count(),
            "arch": platform.machine(),
            "python": platform.python_version(),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement")
    parser.add_argument(
        "--src", default=None, help="run the processes from this source dir (another checkout)"
    )
    parser.add_argument(
        "--compare",
        action="append",
        help="also measure this source dir, runs alternating (may be given more than once)",
    )
    parser.add_argument(
        "--pg", default=None, help="measure PostgreSQL: a URL to create databases with"
    )
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
