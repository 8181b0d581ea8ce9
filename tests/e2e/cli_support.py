"""Running the real ``everloop`` console script against a real server, and reading its tables.

The commands find the server the way a person's shell would: ``EVERLOOP_URL`` and the data
dir's admin token (``EVERLOOP_DATA_DIR``); ``COLUMNS`` is wide so no table line wraps.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.e2e.conftest import Server, everloop_command, free_port, wait_for


def cli_env(server: Server, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
    env.update(
        EVERLOOP_URL=server.base_url,
        EVERLOOP_DATA_DIR=str(server.data_dir),
        COLUMNS="200",
        NO_COLOR="1",
        HOME=str(server.data_dir.parent),  # the chat's history file goes there
    )
    env.update(extra)
    return env


def run_cli(
    server: Server, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*everloop_command(), *args],
        input=stdin,
        env=cli_env(server, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of a table the CLI printed: the header line, a rule of ``─``, then rows whose
    cells are separated by two or more spaces (a wrapped last cell continues on lines that
    start with spaces: joined to the row above)."""
    lines = [line.rstrip() for line in text.splitlines()]
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith("─"))
    header = lines[rule - 1]
    found = list(re.finditer(r"\S+(?: \S+)*", header))
    names = [m.group() for m in found]
    starts = [m.start() for m in found]
    rows: list[dict[str, str]] = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            continue
        cells = [
            line[start : starts[n + 1] if n + 1 < len(starts) else None].strip()
            for n, start in enumerate(starts)
        ]
        if not cells[0] and rows:  # the last cell went on
            rows[-1][names[-1]] += " " + cells[-1]
            continue
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


@contextmanager
def module_server(root: Path) -> Iterator[Server]:
    """One ``everloop serve`` for a whole test module, killed at its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
    env["EVERLOOP_LOG_LEVEL"] = "INFO"
    server = Server(root / "data", free_port(), env)
    try:
        server.start()
        wait_for(
            lambda: httpx.get(f"{server.base_url}/readyz", timeout=5).status_code == 200,
            timeout=60,
            what="/readyz",
        )
        yield server
    finally:
        server.stop()
