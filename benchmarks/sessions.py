"""Session create and list latency of a real `everloop serve` (SQLite by default).

- create: N sessions (default 10,000), one `POST /v1/sessions` at a time on one keep-alive
  connection; p50/p99 per request.
- page: then every page of `GET /v1/sessions?limit=50` over all N sessions (offset paging);
  p50/p99 per page.
- rss: the server's resident set (VmRSS in /proc/<pid>/status) after the first create (which
  warms up the code paths; taken once the server is idle) and after the last; their
  difference divided by the N - 1 sessions in between is the memory an idle session costs
  the server.

Timings are taken by the client, from sending the request to reading the whole response.
Prints progress to stderr and one JSON object to stdout.

Usage: python benchmarks/sessions.py [--sessions 10000] [--page-size 50] [--src DIR]
(--src runs the server from another checkout's source dir, e.g. a baseline, by setting its
PYTHONPATH, so two versions can be measured side by side in one session.)
Talks to 127.0.0.1 only; starts and stops its own server in a temporary data dir (set
EVERLOOP_DATABASE_URL to measure PostgreSQL instead).
"""

from __future__ import annotations

import argparse
import datetime
import json
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
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, seconds: float = 20.0) -> None:
    """Wait (bounded) until the process uses (almost) no CPU for half a second."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < 0.02:
            return


def rss_kib(pid: int) -> int:
    """The resident set size of a process, from /proc/<pid>/status (VmRSS, in KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Server:
    def __init__(self, data_dir: Path, src: str | None = None) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.base = f"http://127.0.0.1:{self.port}/api"
        exe = shutil.which("everloop", path=str(Path(sys.executable).parent)) or "everloop"
        env = {**os.environ, "EVERLOOP_LOG_LEVEL": "WARNING"}
        if src:  # measure another checkout's code (e.g. a baseline) side by side
            env["PYTHONPATH"] = str(Path(src).resolve())
        self.log = (data_dir.parent / f"{data_dir.name}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                exe,
                "serve",
                "--host",
                "127.0.0.1",
                "--data-dir",
                str(data_dir),
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz").status_code == 200:
                    token = self.data_dir / "admin-token"
                    if token.exists():
                        return token.read_text().strip()
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "mean_ms": round(statistics.fmean(values), 2),
        "max_ms": round(max(values), 2),
    }


def timed(client: httpx.Client, method: str, url: str, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.request(method, url, **kwargs)
    body = response.json()
    elapsed = (time.perf_counter() - started) * 1000
    if response.is_error:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text}")
    return elapsed, body


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="everloop-bench-")) / "data"
    server = Server(data_dir, src=args.src)
    load_before = os.getloadavg()
    try:
        token = server.ready()
        # One connection, kept alive: the numbers are the server's, not connection set-up's.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(
            base_url=server.base + "/",
            headers={"Authorization": f"Bearer {token}"},
            limits=limits,
            timeout=30,
        ) as client:
            creates: list[float] = []
            rss_before = rss_kib(server.proc.pid)
            for i in range(args.sessions):
                body = {"title": f"benchmark session {i}", "tags": [f"batch-{i // 1000}"]}
                elapsed, _ = timed(client, "POST", "v1/sessions", json=body)
                creates.append(elapsed)
                if i == 0:
                    # Once the server is idle: right after it is ready it still loads the
                    # model SDKs in a background thread, tens of MB that are not sessions'.
                    settle(server.proc.pid)
                    rss_before = rss_kib(server.proc.pid)
                if (i + 1) % 1000 == 0:
                    print(f"  created {i + 1}/{args.sessions}", file=sys.stderr)

            rss_after = rss_kib(server.proc.pid)
            pages: list[float] = []
            offset = 0
            seen = 0
            while True:
                params = {"limit": args.page_size, "offset": offset}
                elapsed, page = timed(client, "GET", "v1/sessions", params=params)
                if not page["data"]:
                    break
                pages.append(elapsed)
                seen += len(page["data"])
                offset += args.page_size
            print(f"  paged {len(pages)} pages, {seen} sessions", file=sys.stderr)
            if seen != args.sessions:
                raise RuntimeError(f"listed {seen} sessions, created {args.sessions}")
            rss_paged = rss_kib(server.proc.pid)
        load_after = os.getloadavg()
        return {
            "benchmark": "sessions",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "database": "postgresql" if os.environ.get("EVERLOOP_DATABASE_URL") else "sqlite",
            "src": str(Path(args.src).resolve()) if args.src else os.environ.get("PYTHONPATH"),
            "sessions": args.sessions,
            "page_size": args.page_size,
            "create": summary(creates),
            "page": {"pages": len(pages), **summary(pages)},
            "rss": {
                "after_first_create_kib": rss_before,
                "after_last_create_kib": rss_after,
                "after_paging_kib": rss_paged,
                "per_idle_session_bytes": round(
                    (rss_after - rss_before) * 1024 / max(1, args.sessions - 1)
                ),
            },
            "load_average_1m": {
                "before": round(load_before[0], 2),
                "after": round(load_after[0], 2),
            },
            "machine": {
                "nproc": os.cpu_count(),
                "memory_gib": memory_gib(),
                "arch": platform.machine(),
                "python": platform.python_version(),
            },
        }
    finally:
        server.stop()
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument(
        "--src", default=None, help="run the server from this source dir (another checkout)"
    )
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
