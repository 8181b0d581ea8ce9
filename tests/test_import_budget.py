"""What start-up imports: the heavy packages stay out of the paths that must be quick.

``everloop serve`` answers /healthz, and ``everloop token create`` finishes, before anything
below is imported; the model and MCP SDKs load on first use (a server warms them after start).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from everloop.bootstrap_admin import bootstrap_admin, prepare_storage
from everloop.config import Settings

HEAVY = ("openai", "anthropic", "mcp", "dbos", "alembic", "fastapi")


def _imported_after(*modules: str) -> set[str]:
    """Which of HEAVY (and of our own big modules) a new interpreter has after the imports."""
    watched = (*HEAVY, "everloop.bootstrap", "everloop.api.app")
    code = (
        f"import sys, json; import {', '.join(modules)}; "
        f"print(json.dumps([m for m in {watched!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


def test_the_phase_before_binding_and_token_create_import_nothing_heavy() -> None:
    assert _imported_after("everloop.cli.main", "everloop.cli.serve") == set()


def test_the_services_leave_the_sdks_to_first_use() -> None:
    found = _imported_after("everloop.bootstrap", "everloop.api.app")
    assert found & {"openai", "anthropic", "mcp"} == set()


LIGHT = ("sqlalchemy", "pydantic_settings", "everloop.config", "httpx", "asyncio")


def _imported_running(*argv: str) -> set[str]:
    """What of HEAVY and LIGHT a new interpreter has after running ``everloop ARGV``."""
    watched = (*HEAVY, *LIGHT, "everloop.bootstrap", "everloop.api.app")
    code = (
        "import sys, json\n"
        "from everloop.cli.main import app\n"
        "try:\n"
        f"    app({list(argv)!r}, standalone_mode=False)\n"
        "except BaseException:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {watched!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_help_and_version_import_neither_the_database_nor_the_settings() -> None:
    assert _imported_after("everloop.cli.main") == set()
    assert _imported_running("--help") & {*HEAVY, *LIGHT} == set()
    assert _imported_running("--version") & {*HEAVY, *LIGHT} == set()


def test_a_client_command_imports_httpx_but_not_the_server_stack() -> None:
    # No server listens on port 9: the command fails fast, after importing all it would need.
    found = _imported_running("sessions", "ls", "--url", "http://127.0.0.1:9", "--token", "x")
    assert "httpx" in found
    assert found & {*HEAVY, "sqlalchemy", "everloop.config", "everloop.bootstrap"} == set()


def test_token_ls_on_an_embedded_data_dir_reads_it_without_the_server_stack(
    tmp_path: Path,
) -> None:
    # An embedded (SQLite) data dir as `everloop serve` leaves it, whatever database the rest
    # of the suite runs on.
    settings = Settings(data_dir=tmp_path / "data")
    prepare_storage(settings)
    boot = asyncio.run(bootstrap_admin(settings))
    assert boot.token is not None
    found = _imported_running("token", "ls", "--json", "--data-dir", str(settings.data_dir))
    assert found & {*HEAVY, "sqlalchemy", "everloop.config", "everloop.bootstrap"} == set()
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from everloop.cli.main import app; app()",
            "token",
            "ls",
            "--json",
            "--data-dir",
            str(settings.data_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    [token] = json.loads(listed.stdout)
    assert token["prefix"] == boot.token[:12] and token["state"] == "live"
